"""Tracing and metrics on the embedded runtime: one run is one trace across every function hop, log lines carry
Cloud Logging's trace field, and the three metrics count what happened."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared import logs
from shared.observability import metrics, tracing
from shared.runtime.settings import Settings
from tests.conftest import run_to_end
from tests.span_files import read_span_file


@pytest.fixture
def traced_settings(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    traced = dataclasses.replace(
        settings, trace_exporter="file", trace_file=tmp_path / "spans.jsonl", metrics_exporter="memory"
    )
    yield traced
    tracing.configure(tracing.TracingConfig())  # back to `none` for the rest of the suite
    metrics.configure("none", "")


def test_one_run_is_one_trace_across_function_hops(traced_settings: Settings) -> None:
    from shared.app import embedded

    runtime = embedded.start(traced_settings, max_backoff_s=0.05)
    try:
        run = run_to_end(runtime, "testco", "fan_join")
    finally:
        runtime.close()
    assert run["status"] == "SUCCEEDED"
    assert traced_settings.trace_file is not None
    spans = [s for s in read_span_file(traced_settings.trace_file) if s["name"] != "api GET"]
    run_spans = [s for s in spans if s["attributes"].get("cdp.run_id") == run["run_id"] or s["name"] == "api POST"]
    functions = {s["attributes"].get("faas.name") for s in run_spans}
    assert {"api", "run_starter", "stage_worker", "notifier"} <= functions
    stage_spans = [s for s in spans if s["name"].startswith("stage ")]
    assert len(stage_spans) == len(run["stages"])
    assert {s["trace_id"] for s in run_spans + stage_spans} == {run["traceparent"].split("-")[1]}
    by_id = {s["span_id"]: s for s in spans}
    roots = [s for s in run_spans if s["parent_span_id"] not in by_id]
    assert [r["name"] for r in roots] == ["api POST"]  # every other hop hangs under the request that made the run


def test_metrics_count_runs_stage_durations_and_admissions(traced_settings: Settings) -> None:
    from shared.app import embedded

    runtime = embedded.start(traced_settings, max_backoff_s=0.05)
    try:
        ok = run_to_end(runtime, "testco", "fan_join")
        failed = run_to_end(runtime, "testco", "broken")
    finally:
        runtime.close()
    snapshot = metrics.snapshot()
    runs = {p["attributes"]["status"]: p["value"] for p in snapshot["cdp.runs"]}
    assert runs == {"RUNNING": 2, "SUCCEEDED": 1, "FAILED": 1}
    durations = snapshot["cdp.stage.duration"]
    assert sum(p["count"] for p in durations) == sum(1 for s in ok["stages"] + failed["stages"] if s["attempts"])
    assert {p["attributes"]["outcome"] for p in durations} == {"succeeded", "failed"}
    admissions = snapshot["cdp.admission.latency"]
    assert [(p["attributes"], p["count"]) for p in admissions] == [({"trigger": "api", "outcome": "admitted"}, 2)]
    assert all(
        set(p["attributes"]) <= {"status", "ps_type", "outcome", "trigger"} for m in snapshot.values() for p in m
    )


def test_log_lines_inside_a_span_carry_the_cloud_logging_trace_field() -> None:
    from shared.observability import run_span

    tracing.configure(tracing.TracingConfig(project="demo-proj"))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("test.trace.fields")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        with run_span("watchdog", {"run_id": "run_1", "traceparent": parent}):
            logger.warning("inside")
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
        tracing.configure(tracing.TracingConfig())
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["logging.googleapis.com/trace"] == "projects/demo-proj/traces/4bf92f3577b34da6a3ce929d0e0e4736"
    assert len(inside["logging.googleapis.com/spanId"]) == 16 and inside["logging.googleapis.com/trace_sampled"]
    assert "logging.googleapis.com/trace" not in outside


def test_unknown_exporter_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="none, console, otlp, gcp, file"):
        tracing.configure(tracing.TracingConfig(exporter="jaeger"))
    with pytest.raises(ValueError, match="CLOUDACT_TRACE_FILE"):
        tracing.configure(tracing.TracingConfig(exporter="file"))
