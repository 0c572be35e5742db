"""The deployable entry points in root main.py, driven by functions-framework with golden Pub/Sub push bodies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest

from shared.adapters.inprocess_bus import InProcessBus
from shared.contracts import topics
from shared.contracts.state_paths import run_path, stage_path
from shared.runtime.context import Context, set_context
from shared.runtime.settings import Settings

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "data" / "golden"


@pytest.fixture
def ctx(settings: Settings) -> Iterator[Context]:
    bus = InProcessBus()
    context = Context(settings, _bus=bus)
    previous = set_context(context)
    yield context
    bus.close()
    context.close()
    set_context(previous)


def client(target: str, signature: str = "cloudevent") -> Any:
    return functions_framework.create_app(
        target=target, source=str(REPO / "main.py"), signature_type=signature
    ).test_client()


def push(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text())


def test_run_starter_starts_the_run_from_a_push_body(ctx: Context) -> None:
    body = push("run_request.push.json")
    response = client("run_starter").post(f"/projects/cloudact-test/topics/{topics.RUN_REQUESTS}", json=body)
    assert response.status_code == 200
    run = ctx.state.get(run_path("run_019ab3c1d2e3f4a5b6c7d8"))
    assert run is not None and run["status"] == "RUNNING" and run["parameters"] == {"order_count": 10}
    assert ctx.state.get(stage_path(run["run_id"], "load_orders"))["dispatched_by"] == "run_starter"  # type: ignore[index]
    again = client("run_starter").post(f"/projects/cloudact-test/topics/{topics.RUN_REQUESTS}", json=body)
    assert again.status_code == 200  # a redelivery is harmless


def test_notifier_acks_and_deduplicates_events(ctx: Context) -> None:
    c = client("notifier")
    for _ in range(2):
        assert (
            c.post(
                f"/projects/cloudact-test/topics/{topics.RUN_EVENTS}", json=push("status_event.push.json")
            ).status_code
            == 200
        )
    assert len(ctx.state.list("events")) == 1


def test_undecodable_push_is_acked_and_dead_lettered(ctx: Context) -> None:
    bus = ctx.bus
    assert isinstance(bus, InProcessBus)
    response = client("stage_worker").post(
        f"/projects/cloudact-test/topics/{topics.STAGE_TASKS}", json=push("undecodable.push.json")
    )
    assert response.status_code == 200
    assert bus.stats.published == 1  # onto the dead-letter topic


def test_transient_failure_is_a_nack(ctx: Context) -> None:
    """A stage task for a stage whose attempt is still running under its lease: 500 so Pub/Sub redelivers."""
    body = push("stage_task.push.json")
    client("run_starter").post("/projects/p/topics/t", json=push("run_request.push.json"))
    ctx.state.update_if(
        stage_path("run_019ab3c1d2e3f4a5b6c7d8", "load_orders"),
        {"status": "RUNNING", "attempt": 1, "lease_until": "2999-01-01T00:00:00+00:00"},
        ctx.state.get_versioned(stage_path("run_019ab3c1d2e3f4a5b6c7d8", "load_orders")).version,
    )  # type: ignore[union-attr]
    response = client("stage_worker").post(f"/projects/cloudact-test/topics/{topics.STAGE_TASKS}", json=body)
    assert response.status_code == 500


def test_api_entry_point_answers_json_errors(ctx: Context) -> None:
    from shared.lifecycle.local_tenants import bootstrap_local_tenants

    keys = bootstrap_local_tenants(ctx).api_keys
    c = client("api", "http")
    r = c.post("/api/v1/tenants/acme/pipelines/execute", json={"pipeline_id": "daily_sales"})
    assert r.status_code == 401 and r.get_json()["details"]["field"] == "X-API-Key"  # no key, no entry
    c.environ_base["HTTP_X_API_KEY"] = keys["acme"]
    r = c.post("/api/v1/tenants/acme/pipelines/execute", json={"pipeline_id": "no_such"})
    assert r.status_code == 404 and r.get_json()["error"] == "NOT_FOUND"
    r = c.post("/api/v1/tenants/acme/pipelines/execute", data=b"{not json", content_type="application/json")
    assert r.status_code == 400 and r.get_json()["details"]["field"] == "<body>"
    r = c.post("/api/v1/tenants/acme/pipelines/execute", json={"pipeline_id": "Bad Id!"})
    assert r.status_code == 400 and r.get_json()["details"]["field"] == "pipeline_id"
    r = c.post("/api/v1/tenants/acme/pipelines/execute", json={"pipeline_id": "daily_sales", "surprise": 1})
    assert r.status_code == 400 and r.get_json()["details"]["field"] == "surprise"
    r = c.post("/api/v1/tenants/acme/pipelines/execute", data=b"x" * (2 << 20), content_type="application/json")
    assert r.status_code == 413
    r = c.delete("/api/v1/tenants/acme/pipelines/execute")
    assert r.status_code == 405 and r.get_json()["details"]["allowed"] == ["POST"]
    r = c.get("/api/v1/tenants/acme/metadata/executions/run_doesnotexist")
    assert r.status_code == 404
    r = c.get("/api/v1/tenants/acme/metadata/executions?limit=abc")
    assert r.status_code == 400 and r.get_json()["details"]["field"] == "limit"
    r = c.get("/nowhere")
    assert r.status_code == 404 and set(r.get_json()) == {"error", "message", "details"}
    ok = c.post("/api/v1/tenants/acme/pipelines/execute", json={"pipeline_id": "daily_sales"})
    assert ok.status_code == 202 and ok.get_json()["status"] == "QUEUED"
    listed = c.get("/api/v1/tenants/acme/metadata/executions").get_json()
    assert [e["run_id"] for e in listed["executions"]] == [ok.get_json()["run_id"]]
    assert c.get("/api/v1/tenants/testco/metadata/executions").status_code == 403  # acme's key: not testco's runs
    c.environ_base["HTTP_X_API_KEY"] = keys["testco"]
    assert c.get("/api/v1/tenants/testco/metadata/executions").get_json()["count"] == 0  # tenants are isolated
