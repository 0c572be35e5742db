"""Three low-cardinality metrics, the ones an operator alerts on:

- `cdp.runs` (counter): run status changes, by `status` (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, CANCELLED);
- `cdp.stage.duration` (histogram, s): processor time per stage attempt, by `ps_type` and `outcome`;
- `cdp.admission.latency` (histogram, s): admitting a run, by `trigger` (api | schedule) and `outcome`.

Tenant and pipeline ids are deliberately not labels (10,000 tenants would be 10,000 series); they are on the spans.
Exporters (`CLOUDACT_METRICS_EXPORTER`): `none` (default: nothing recorded, no SDK imported), `console`, `otlp`,
`gcp` (Cloud Monitoring, exported every 60 s: Monitoring accepts one point per series every few seconds, so
invocations never flush it), and `memory` (read back in-process with `snapshot()`; tests).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

EXPORTERS = ("none", "console", "otlp", "gcp", "memory")
EXPORT_INTERVAL_MS = 60_000


@dataclass
class _Instruments:
    exporter: str
    provider: Any = None
    reader: Any = None
    runs: Any = None
    stage_duration: Any = None
    admission_latency: Any = None


_lock = threading.Lock()
_active = _Instruments("none")


def configure(exporter: str, project: str) -> None:
    global _active
    if _active.exporter == exporter:
        return
    if exporter not in EXPORTERS:
        raise ValueError(f"CLOUDACT_METRICS_EXPORTER must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    with _lock:
        if _active.exporter == exporter:
            return
        previous, _active = _active, _build(exporter, project)
    if previous.provider is not None:
        previous.provider.shutdown()


def _build(exporter: str, project: str) -> _Instruments:
    if exporter == "none":
        return _Instruments("none")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    reader: Any
    if exporter == "memory":
        reader = InMemoryMetricReader()
    else:
        reader = PeriodicExportingMetricReader(_exporter(exporter, project), export_interval_millis=EXPORT_INTERVAL_MS)
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "cloudact"}))
    meter = provider.get_meter("cloudact")
    return _Instruments(
        exporter,
        provider,
        reader,
        meter.create_counter("cdp.runs", unit="{run}", description="Run status changes by status"),
        meter.create_histogram("cdp.stage.duration", unit="s", description="Processor time per stage attempt"),
        meter.create_histogram("cdp.admission.latency", unit="s", description="Time to admit a run"),
    )


def _exporter(exporter: str, project: str) -> Any:
    if exporter == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter()
    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter()
    from opentelemetry.exporter.cloud_monitoring import CloudMonitoringMetricsExporter

    return CloudMonitoringMetricsExporter(project_id=project)


def record_run_status(status: str) -> None:
    if _active.runs is not None:
        _active.runs.add(1, {"status": status})


def record_stage_duration(seconds: float, ps_type: str, outcome: str) -> None:
    if _active.stage_duration is not None:
        _active.stage_duration.record(seconds, {"ps_type": ps_type, "outcome": outcome})


def record_admission_latency(seconds: float, trigger: str, outcome: str) -> None:
    if _active.admission_latency is not None:
        _active.admission_latency.record(seconds, {"trigger": trigger, "outcome": outcome})


def snapshot() -> dict[str, list[dict[str, Any]]]:
    """`{metric name: [{attributes, value | count+sum}]}` from the `memory` exporter; empty for any other."""
    if _active.exporter != "memory":
        return {}
    data = _active.reader.get_metrics_data()
    out: dict[str, list[dict[str, Any]]] = {}
    for resource_metrics in data.resource_metrics if data else ():
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                points = out.setdefault(metric.name, [])
                for point in metric.data.data_points:
                    entry: dict[str, Any] = {"attributes": dict(point.attributes or {})}
                    if hasattr(point, "count"):
                        entry.update(count=point.count, sum=point.sum)
                    else:
                        entry["value"] = point.value
                    points.append(entry)
    return out
