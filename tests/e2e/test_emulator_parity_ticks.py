"""The two Cloud Scheduler paths on the emulator stack: a ScheduleTick on cdp-schedule-ticks makes scheduled_trigger
admit a run that then succeeds, and a MaintenanceTick on cdp-maintenance-ticks runs the watchdog; then the listings
(runs, notifications, tenants) with each filter combination the API offers find that run, and the run-history routes
(summary, quality, a stage's table preview) read it, the preview from the tenant's warehouse. With the pipeline,
admission and dead-letter e2e tests this exercises every function and every Firestore query shape, which
`make gcp-parity` needs to record what each one calls (reliability/parity)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bench.local_stack import http_json
from shared.contracts import topics
from shared.contracts.messages import MaintenanceTick, ScheduleTick
from shared.ports.state import Filter
from shared.scheduling.cron import CronSchedule
from tests.conftest import wait_for
from tests.e2e.conftest import stack_context

pytestmark = pytest.mark.emulator


def test_schedule_and_maintenance_ticks_on_emulators(emulator_stack: Any) -> None:
    from google.cloud import pubsub_v1

    admin = {"X-Admin-Token": emulator_stack.env["CLOUDACT_ADMIN_TOKEN"], "X-User-ID": "e2e"}
    body = json.dumps({"tenant_id": "acme", "plan": "starter"}).encode()
    status, created = http_json("POST", f"{emulator_stack.api_url}/api/v1/admin/tenants", body, admin)
    assert status == 201, created
    key = {"X-API-Key": created["api_key"]["api_key"]}
    # daily_sales' newest 03:00 slot, ticked on time (`misfire: skip` drops a tick published over an hour late)
    slot = CronSchedule("0 3 * * *", "Europe/Brussels").latest_at_or_before(datetime.now(UTC))
    publisher = pubsub_v1.PublisherClient()
    tick = ScheduleTick(tenant_id="acme", pipeline_id="daily_sales", scheduled_for=slot)
    publisher.publish(
        publisher.topic_path(emulator_stack.project, topics.SCHEDULE_TICKS), tick.to_bytes(), ticked_at=slot.isoformat()
    ).result(10)
    publisher.publish(
        publisher.topic_path(emulator_stack.project, topics.MAINTENANCE_TICKS), MaintenanceTick().to_bytes()
    ).result(10)
    state = stack_context(emulator_stack).state

    def scheduled_run() -> Any:
        runs = [r for _, r in state.list("runs", [Filter("tenant_id", "==", "acme")])]
        done = [r for r in runs if r.get("trigger", {}).get("type") == "schedule" and r.get("finalized")]
        return done[0] if done else None

    run = wait_for(scheduled_run, timeout=90, interval=0.3)
    assert run["status"] == "SUCCEEDED", run
    assert run["pipeline_id"] == "daily_sales"

    base = f"{emulator_stack.api_url}/api/v1/tenants/acme"
    since = slot.date().isoformat()
    for query in (
        "",
        "?status=SUCCEEDED",
        "?pipeline_id=daily_sales",
        "?status=SUCCEEDED&pipeline_id=daily_sales",
        f"?created_after={since}",
        f"?status=SUCCEEDED&created_after={since}",
    ):
        status, listed = http_json("GET", f"{base}/metadata/executions{query}", headers=key)
        assert status == 200, (query, listed)
        assert run["run_id"] in json.dumps(listed), query
    for query in ("", "?status=failed", f"?run_id={run['run_id']}"):
        status, listed = http_json("GET", f"{base}/notifications{query}", headers=key)
        assert status == 200, (query, listed)
    for query in ("", "?status=active"):
        status, listed = http_json("GET", f"{emulator_stack.api_url}/api/v1/admin/tenants{query}", headers=admin)
        assert status == 200 and "acme" in json.dumps(listed), (query, listed)
    # The run-history routes; the preview reads the tenant's warehouse as the tenant (on GCP: its impersonated account).
    status, summary = http_json("GET", f"{base}/metadata/summary?days=7", headers=key)
    assert status == 200, summary
    assert "daily_sales" in json.dumps(summary), summary
    status, quality = http_json("GET", f"{base}/metadata/executions/{run['run_id']}/quality", headers=key)
    assert status == 200, quality
    status, preview = http_json(
        "GET", f"{base}/metadata/executions/{run['run_id']}/stages/load_orders/preview?limit=3", headers=key
    )
    assert status == 200, preview
    assert len(preview["rows"]) == 3, preview
