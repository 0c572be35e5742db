"""Observability: a span per function invocation and per stage, one trace per run, and three metrics.

The hooks elsewhere are one line each: publishers call `with_trace_context(attributes)`, `delivery.handle_event`
wraps the handler in `pubsub_span`, the api function in `http_span`, the engine's processor call in `stage_span`,
and `logs.JsonFormatter` adds `log_trace_fields()` so Cloud Logging nests each line under its trace.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from shared.errors import ClientError, TerminalError
from shared.observability import metrics
from shared.observability.tracing import (
    TracingConfig,
    child_span,
    current_traceparent,
    invocation_span,
    log_trace_fields,
    trace_id_of,
    with_trace_context,
)

if TYPE_CHECKING:
    from shared.contracts.envelope import ReceivedMessage


class ExporterSettings(Protocol):
    """What of shared.runtime.settings.Settings configures the exporters (structural: observability sits below it)."""

    @property
    def trace_exporter(self) -> str: ...

    @property
    def project(self) -> str: ...

    @property
    def trace_file(self) -> Path | None: ...

    @property
    def trace_sample_ratio(self) -> float: ...

    @property
    def metrics_exporter(self) -> str: ...


__all__ = [
    "configure",
    "current_traceparent",
    "http_span",
    "log_trace_fields",
    "pubsub_span",
    "run_span",
    "stage_span",
    "timed_admission",
    "trace_id_of",
    "with_trace_context",
]


def configure(settings: ExporterSettings) -> None:
    """Apply the settings' exporters; a no-op after the first call of a process with the same settings."""
    from shared.observability import tracing

    tracing.configure(
        TracingConfig(
            exporter=settings.trace_exporter,
            project=settings.project,
            file=settings.trace_file,
            sample_ratio=settings.trace_sample_ratio,
        )
    )
    metrics.configure(settings.metrics_exporter, settings.project)


def _id_attributes(ids: Mapping[str, Any]) -> dict[str, Any]:
    return {f"cdp.{k}": v for k, v in ids.items() if v is not None}


@contextlib.contextmanager
def pubsub_span(function: str, received: ReceivedMessage, ids: Mapping[str, Any]) -> Iterator[Any]:
    """One Pub/Sub-triggered invocation, a child of the publisher's span (the message's `traceparent`)."""
    attributes = {
        "faas.name": function,
        "faas.trigger": "pubsub",
        "messaging.system": "gcp_pubsub",
        "messaging.operation": "process",
        "messaging.destination.name": received.topic or None,
        "messaging.message.id": received.message_id or None,
        "cdp.delivery_attempt": received.delivery_attempt,
        **_id_attributes(ids),
    }
    with invocation_span(
        f"{function} process {received.topic or 'message'}", "CONSUMER", attributes, received.attributes
    ) as span:
        yield span


@contextlib.contextmanager
def http_span(function: str, method: str, path: str, headers: Mapping[str, str]) -> Iterator[Any]:
    """One HTTP invocation; a caller's W3C `traceparent` header makes it part of the caller's trace."""
    carrier = {k.lower(): v for k, v in headers.items() if k.lower() in ("traceparent", "tracestate")}
    attributes = {"faas.name": function, "faas.trigger": "http", "http.request.method": method, "url.path": path}
    with invocation_span(f"{function} {method}", "SERVER", attributes, carrier) as span:
        yield span


@contextlib.contextmanager
def run_span(name: str, run: Mapping[str, Any], **attributes: Any) -> Iterator[Any]:
    """Work done for a run outside its message chain (watchdog, dead letters), inside the run's own trace."""
    ids = {k: run.get(k) for k in ("run_id", "tenant_id", "pipeline_id")}
    with child_span(name, {**_id_attributes(ids), **attributes}, run.get("traceparent")) as span:
        yield span


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "succeeded"
    if type(exc).__name__ == "StageTimeout":
        return "timed_out"
    if isinstance(exc, TerminalError | ClientError):
        return "failed"
    return "error"


@contextlib.contextmanager
def stage_span(stage_id: str, ps_type: str, attempt: int) -> Iterator[Any]:
    """The processor's work for one stage attempt: a span, and its duration in `cdp.stage.duration`."""
    started = time.perf_counter()
    error: BaseException | None = None
    try:
        with child_span(
            f"stage {stage_id}", {"cdp.stage_id": stage_id, "cdp.ps_type": ps_type, "cdp.attempt": attempt}
        ) as span:
            yield span
    except BaseException as exc:
        error = exc
        raise
    finally:
        metrics.record_stage_duration(time.perf_counter() - started, ps_type, _outcome(error))


@contextlib.contextmanager
def timed_admission(trigger: str) -> Iterator[None]:
    """Time an admission into `cdp.admission.latency` (refusals included, with outcome `refused`)."""
    started = time.perf_counter()
    outcome = "admitted"
    try:
        yield
    except ClientError:
        outcome = "refused"
        raise
    except BaseException:
        outcome = "error"
        raise
    finally:
        metrics.record_admission_latency(time.perf_counter() - started, trigger, outcome)
