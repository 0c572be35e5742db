"""One run is one trace across separate function processes: the W3C traceparent rides in Pub/Sub attributes from the
api function through run_starter and stage_worker to the notifier. Every function process writes its spans to one
JSON-lines file (the `file` exporter), which the test reads back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.local_stack import http_json
from tests.conftest import wait_for
from tests.e2e.conftest import stack_context
from tests.span_files import read_span_file

pytestmark = pytest.mark.emulator


def STACK_EXTRA_ENV(root: Path) -> dict[str, str]:  # read by the emulator_stack fixture
    return {"CLOUDACT_TRACE_EXPORTER": "file", "CLOUDACT_TRACE_FILE": str(root / "spans.jsonl")}


def run_to_end(stack: Any, tenant: str, pipeline: str) -> dict[str, Any]:
    from shared.lifecycle.local_tenants import bootstrap_local_tenants

    key = bootstrap_local_tenants(stack_context(stack)).api_keys[tenant]  # onboarded in the Firestore emulator
    base = f"{stack.api_url}/api/v1/tenants/{tenant}"
    status, body = http_json(
        "POST", f"{base}/pipelines/execute", json.dumps({"pipeline_id": pipeline}).encode(), {"X-API-Key": key}
    )
    assert status == 202, body

    def ended() -> Any:
        status, run = http_json("GET", f"{base}/metadata/executions/{body['run_id']}", headers={"X-API-Key": key})
        assert status == 200, run
        return run if run["status"] in ("SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED") else None

    return dict(wait_for(ended, timeout=90, interval=0.2))


def test_a_runs_spans_share_one_trace_id_across_function_processes(emulator_stack: Any) -> None:
    spans_file = Path(emulator_stack.env["CLOUDACT_TRACE_FILE"])
    run = run_to_end(emulator_stack, "testco", "fan_join")
    assert run["status"] == "SUCCEEDED", run
    run_id = run["run_id"]
    trace_id = run["traceparent"].split("-")[1]

    def run_spans() -> list[dict[str, Any]]:
        spans = [s for s in read_span_file(spans_file) if s["trace_id"] == trace_id]
        notified = any(
            s["attributes"].get("faas.name") == "notifier" and s["attributes"].get("cdp.run_id") == run_id
            for s in spans
        )
        stages = sum(1 for s in spans if s["name"].startswith("stage "))
        ids = {s["span_id"] for s in spans}
        complete = sum(1 for s in spans if s["parent_span_id"] not in ids) == 1  # a parent ends after its child
        return spans if notified and complete and stages == len(run["stages"]) else []

    spans = wait_for(run_spans, timeout=30, interval=0.2)
    functions = {s["attributes"].get("faas.name") for s in spans if s["kind"] in ("SERVER", "CONSUMER")}
    assert functions == {"api", "run_starter", "stage_worker", "notifier"}
    assert len({s["pid"] for s in spans}) == 4  # four functions-framework processes, one trace
    tagged = [s for s in read_span_file(spans_file) if s["attributes"].get("cdp.run_id") == run_id]
    assert {s["trace_id"] for s in tagged} == {trace_id}  # no hop of this run started a trace of its own
    by_id = {s["span_id"]: s for s in spans}
    roots = [s for s in spans if s["parent_span_id"] not in by_id]
    assert [(r["name"], r["parent_span_id"]) for r in roots] == [("api POST", None)]
    starter = next(s for s in spans if s["attributes"].get("faas.name") == "run_starter")
    assert by_id[starter["parent_span_id"]]["name"] == "api POST"  # the hop is a parent/child link, not a guess
