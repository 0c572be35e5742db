"""OpenTelemetry spans for function invocations and stages, with W3C trace context carried in Pub/Sub attributes.

One run is one trace: every publisher adds `traceparent` (W3C) to the message attributes, every Pub/Sub-triggered
function opens its invocation span as a child of it, and the run document keeps the traceparent of the request that
created it so the watchdog and the dead-letter handler can continue the same trace.

Exporters (`CLOUDACT_TRACE_EXPORTER`): `none` (default outside GCP) records nothing and imports no SDK, yet still
propagates real trace and span ids, so log lines of one run share a trace id; `console`, `otlp` (standard
`OTEL_EXPORTER_OTLP_*` variables), `gcp` (Cloud Trace, the default in the gcp runtime) and `file` (JSON lines at
`CLOUDACT_TRACE_FILE`, one span per line; used by the emulator e2e test).
"""

from __future__ import annotations

import contextlib
import random
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
LOG_TRACE_KEY = "logging.googleapis.com/trace"
LOG_SPAN_KEY = "logging.googleapis.com/spanId"
LOG_SAMPLED_KEY = "logging.googleapis.com/trace_sampled"
EXPORTERS = ("none", "console", "otlp", "gcp", "file")
_REMOTE_EXPORTERS = ("otlp", "gcp")


@dataclass(frozen=True)
class TracingConfig:
    exporter: str = "none"
    project: str = "cloudact-local"
    file: Path | None = None
    sample_ratio: float = 1.0
    service: str = "cloudact"


@dataclass
class _Active:
    config: TracingConfig
    provider: Any = None
    """The SDK TracerProvider; None in `none` mode (non-recording spans with real ids)."""
    tracer: Any = None


_lock = threading.Lock()
_active = _Active(TracingConfig())
_depth = threading.local()


def configure(config: TracingConfig) -> None:
    """Install the exporter named by `config` (cheap when nothing changed; functions call it per invocation)."""
    global _active
    if _active.config == config:
        return
    if config.exporter not in EXPORTERS:
        raise ValueError(f"CLOUDACT_TRACE_EXPORTER must be one of {', '.join(EXPORTERS)}, got {config.exporter!r}")
    if config.exporter == "file" and config.file is None:
        raise ValueError("CLOUDACT_TRACE_EXPORTER=file needs CLOUDACT_TRACE_FILE (a path to append spans to)")
    with _lock:
        if _active.config == config:
            return
        previous = _active
        _active = _build(config)
    if previous.provider is not None:
        previous.provider.shutdown()


def _build(config: TracingConfig) -> _Active:
    if config.exporter == "none":
        return _Active(config)
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create({"service.name": config.service, "cloud.account.id": config.project}),
        sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
    )
    exporter = _exporter(config)
    processor = BatchSpanProcessor(exporter) if config.exporter in _REMOTE_EXPORTERS else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    return _Active(config, provider, provider.get_tracer("cloudact"))


def _exporter(config: TracingConfig) -> Any:
    if config.exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if config.exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if config.exporter == "gcp":
        from opentelemetry.exporter.cloud_trace import CloudTraceSpanExporter

        return CloudTraceSpanExporter(project_id=config.project)  # type: ignore[no-untyped-call]
    from shared.observability.file_exporter import JsonLinesSpanExporter

    assert config.file is not None
    return JsonLinesSpanExporter(config.file)


def flush(timeout_ms: int = 3000) -> None:
    """Push buffered spans out now. Cloud Functions throttle the CPU once a response is sent, so remote exporters
    flush at the end of each invocation rather than rely on the batch timer."""
    provider = _active.provider
    if provider is not None and _active.config.exporter in _REMOTE_EXPORTERS:
        provider.force_flush(timeout_ms)


# ------------------------------------------------------------------------------------------------ spans
def _parent_context(carrier: Mapping[str, str] | None) -> Any:
    """The Context to parent a span on: the carrier's W3C traceparent, else a fresh root (never the caller's)."""
    from opentelemetry.context import Context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if not carrier or TRACEPARENT not in carrier:
        return Context()
    return TraceContextTextMapPropagator().extract(dict(carrier), context=Context())


@contextlib.contextmanager
def _span(name: str, kind: str, attributes: Mapping[str, Any], parent: Any) -> Iterator[Any]:
    """Start a span as current; `parent` is an OTel Context or None for the current one."""
    from opentelemetry import trace

    attrs = {k: v for k, v in attributes.items() if v is not None}
    tracer = _active.tracer
    if tracer is not None:
        with tracer.start_as_current_span(
            name, context=parent, kind=getattr(trace.SpanKind, kind), attributes=attrs
        ) as s:
            yield s
        return
    parent_span = trace.get_current_span(parent).get_span_context()
    trace_id = parent_span.trace_id if parent_span.is_valid else random.getrandbits(128)
    flags = parent_span.trace_flags if parent_span.is_valid else trace.TraceFlags(trace.TraceFlags.DEFAULT)
    context = trace.SpanContext(trace_id, random.getrandbits(64), is_remote=False, trace_flags=flags)
    with trace.use_span(trace.NonRecordingSpan(context), end_on_exit=True) as s:
        yield s


@contextlib.contextmanager
def invocation_span(
    name: str, kind: str, attributes: Mapping[str, Any], carrier: Mapping[str, str] | None
) -> Iterator[Any]:
    """The span of one function invocation, parented on the carrier's traceparent; flushes remote exporters after."""
    outermost = not getattr(_depth, "value", 0)
    _depth.value = getattr(_depth, "value", 0) + 1
    try:
        with _span(name, kind, attributes, _parent_context(carrier)) as span:
            yield span
    finally:
        _depth.value -= 1
        if outermost:
            flush()


@contextlib.contextmanager
def child_span(name: str, attributes: Mapping[str, Any], traceparent: str | None = None) -> Iterator[Any]:
    """An internal span under the current one, or under `traceparent` when given (e.g. a run's stored context)."""
    parent = _parent_context({TRACEPARENT: traceparent}) if traceparent else None
    with _span(name, "INTERNAL", attributes, parent) as span:
        yield span


# ------------------------------------------------------------------------------------------------ propagation
def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, or None outside any span."""
    if "opentelemetry.trace" not in sys.modules:
        return None
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def with_trace_context(attributes: dict[str, str]) -> dict[str, str]:
    """`attributes` plus `traceparent` of the current span (unchanged outside a span): call when publishing."""
    parent = current_traceparent()
    if parent is not None:
        attributes[TRACEPARENT] = parent
    return attributes


def trace_id_of(traceparent: str | None) -> str | None:
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def log_trace_fields() -> dict[str, Any]:
    """Cloud Logging's trace fields for the current span, so Logs Explorer groups a run's lines under its trace."""
    if "opentelemetry.trace" not in sys.modules:
        return {}
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return {}
    return {
        LOG_TRACE_KEY: f"projects/{_active.config.project}/traces/{ctx.trace_id:032x}",
        LOG_SPAN_KEY: f"{ctx.span_id:016x}",
        LOG_SAMPLED_KEY: ctx.trace_flags.sampled,
    }
