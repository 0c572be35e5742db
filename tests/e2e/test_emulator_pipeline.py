"""The sample pipeline through Google's Pub/Sub and Firestore emulators and bqemulator, every function a real
functions-framework process behind a push subscription (no in-process calls)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from bench.local_stack import http_json
from tests.conftest import wait_for
from tests.e2e.conftest import stack_context

pytestmark = pytest.mark.emulator


_KEYS: dict[tuple[str, str], str] = {}


def onboard(stack: Any, tenant: str) -> str:
    """Onboard through the api function with the admin credential; the first key comes back once."""
    if (stack.project, tenant) not in _KEYS:
        admin = {"X-Admin-Token": stack.env["CLOUDACT_ADMIN_TOKEN"], "X-User-ID": "e2e"}
        body = json.dumps({"tenant_id": tenant, "plan": "starter"}).encode()
        status, created = http_json("POST", f"{stack.api_url}/api/v1/admin/tenants", body, admin)
        assert status == 201, created
        _KEYS[(stack.project, tenant)] = created["api_key"]["api_key"]
        assert http_json("POST", f"{stack.api_url}/api/v1/admin/tenants", body, admin)[0] == 200  # idempotent
        assert http_json("POST", f"{stack.api_url}/api/v1/admin/tenants", body)[0] == 401  # never open
    return _KEYS[(stack.project, tenant)]


def _execute(stack: Any, tenant: str, pipeline: str, **body: Any) -> tuple[int, Any]:
    return http_json(
        "POST",
        f"{stack.api_url}/api/v1/tenants/{tenant}/pipelines/execute",
        json.dumps({"pipeline_id": pipeline, **body}).encode(),
        {"X-User-ID": "e2e", "X-API-Key": onboard(stack, tenant if tenant != "nobody" else "acme")},
    )


def _wait_terminal(stack: Any, tenant: str, run_id: str, timeout: float = 90.0) -> dict[str, Any]:
    url = f"{stack.api_url}/api/v1/tenants/{tenant}/metadata/executions/{run_id}"

    def done() -> Any:
        status, body = http_json("GET", url, headers={"X-API-Key": onboard(stack, tenant)})
        assert status == 200, body
        return body if body["status"] in ("SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED") else None

    return dict(wait_for(done, timeout=timeout, interval=0.2))


def test_sample_pipeline_runs_to_succeeded_through_emulators(emulator_stack: Any) -> None:
    started = time.monotonic()
    status, body = _execute(emulator_stack, "acme", "daily_sales")
    assert status == 202, body
    run = _wait_terminal(emulator_stack, "acme", body["run_id"])
    assert run["status"] == "SUCCEEDED", run
    assert [s["stage_id"] for s in run["stages"]] == [
        "load_orders",
        "revenue_by_region",
        "revenue_by_product",
        "daily_summary",
    ]
    assert all(s["status"] == "SUCCEEDED" and len(s["attempts"]) == 1 for s in run["stages"])
    assert run["stages"][0]["rows_out"] == 5000
    warehouse = stack_context(emulator_stack).warehouse_for("acme")
    history = wait_for(
        lambda: warehouse.query(
            "SELECT status FROM acme_metadata.pipeline_executions WHERE run_id = @r AND execution_date >= "
            "DATE_SUB(CURRENT_DATE(), INTERVAL 7 DAY)",
            {"r": body["run_id"]},
        ).to_pylist(),
        timeout=30,
    )
    assert history == [{"status": "SUCCEEDED"}]
    assert warehouse.query("SELECT COUNT(*) AS n FROM acme_sales.orders").to_pylist() == [{"n": 5000}]
    print(f"emulator e2e: run {body['run_id']} SUCCEEDED in {time.monotonic() - started:.2f}s wall")


def test_failed_run_and_bad_requests_on_emulators(emulator_stack: Any) -> None:
    status, body = _execute(emulator_stack, "testco", "broken")
    assert status == 202
    run = _wait_terminal(emulator_stack, "testco", body["run_id"])
    assert run["status"] == "FAILED"
    assert {s["stage_id"]: s["status"] for s in run["stages"]}["transform"] == "SKIPPED"
    assert _execute(emulator_stack, "nobody", "daily_sales")[0] == 403  # acme's key on another tenant's path
    status, body = _execute(emulator_stack, "acme", "daily_sales", parameters="oops")
    assert status == 400 and body["details"]["field"] == "parameters"


def test_undecodable_message_is_dead_lettered_on_emulators(emulator_stack: Any) -> None:
    from google.cloud import pubsub_v1

    from bench.local_stack import DEAD_LETTER_PULL_SUBSCRIPTION
    from shared.contracts import topics

    publisher = pubsub_v1.PublisherClient()
    publisher.publish(
        publisher.topic_path(emulator_stack.project, topics.STAGE_TASKS), b"garbage", tenant_id="testco"
    ).result(timeout=10)
    subscriber = pubsub_v1.SubscriberClient()
    sub = subscriber.subscription_path(emulator_stack.project, DEAD_LETTER_PULL_SUBSCRIPTION)

    def pulled() -> Any:
        response = subscriber.pull(subscription=sub, max_messages=10, timeout=5)
        return [m for m in response.received_messages if m.message.data == b"garbage"]

    messages = wait_for(pulled, timeout=30, interval=0.2)
    assert "not JSON" in messages[0].message.attributes["cdp_dead_letter_reason"]
