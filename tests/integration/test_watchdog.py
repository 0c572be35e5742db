"""The watchdog on the embedded runtime: abandoned runs time out and give their quota slot back, lost requests and
orphaned claims are restarted, and dead letters nobody could act on are reported."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

from shared.adapters.inprocess_bus import InProcessBus
from shared.clock import iso, parse_iso, utc_now
from shared.contracts import topics
from shared.contracts.envelope import OutboundMessage, ReceivedMessage
from shared.contracts.messages import MaintenanceTick, RunRequest, Trigger
from shared.contracts.state_paths import claim_path, run_path
from shared.runs.admission import admit_run, usage
from shared.runs.run_start import start_run
from shared.runs.store import list_stages
from shared.runs.watchdog import watchdog
from shared.runtime.context import Context
from shared.runtime.settings import REPO_ROOT, Settings
from tests.conftest import wait_for
from tests.manual_clock import ManualClock

ABANDONED = """pipeline_id: abandoned
description: the run's deadline (0.6 s) passes long before its only step (60 s) could end
timeout_minutes: 0.01
steps:
  - {step_id: long_step, ps_type: debug.noop, timeout_minutes: 5, config: {sleep_ms: 60000}}
"""

CHILD = textwrap.dedent(
    """
    import sys, time
    from shared.app import embedded
    runtime = embedded.start()
    response = runtime.call_api(
        "POST", "/api/v1/tenants/testco/pipelines/execute", {"pipeline_id": "abandoned"},
        {"X-API-Key": runtime.api_keys["testco"]},
    )
    print(response.body["run_id"], flush=True)
    time.sleep(120)  # killed long before this: the stage is RUNNING when the process dies
    """
)


def active_slots(ctx: Context) -> list[str]:
    return list(usage(ctx, "testco")["active_run_ids"])


def test_abandoned_running_run_times_out_releases_its_slot_and_alerts(
    settings: Settings, config_dir: Path, make_runtime: Any, ticking_clock: ManualClock
) -> None:
    (config_dir / "testco" / "pipelines" / "abandoned.yaml").write_text(ABANDONED)
    env = {**os.environ, "CLOUDACT_HOME": str(settings.home), "CLOUDACT_CONFIG_DIR": str(config_dir)}
    env["CLOUDACT_RUNTIME"] = "embedded"
    child = subprocess.Popen([sys.executable, "-c", CHILD], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        run_id = child.stdout.readline().strip()
        assert run_id.startswith("run_"), run_id
        observer = Context(settings)
        wait_for(lambda: [s for s in list_stages(observer.state, run_id) if s["status"] == "RUNNING"], timeout=30)
    finally:
        child.send_signal(signal.SIGKILL)  # the worker instance dies mid-stage: nothing will finish this run
        child.wait(timeout=10)
    run = observer.state.get(run_path(run_id)) or {}
    assert run["status"] == "RUNNING" and run_id in active_slots(observer)
    ticking_clock.advance(max(0.0, (parse_iso(run["deadline_at"]) - utc_now()).total_seconds()) + 0.05)

    runtime = make_runtime()
    alerts: list[ReceivedMessage] = []
    runtime.bus.subscribe(topics.RUN_EVENTS, alerts.append, "test-alert-sink")
    runtime.bus.publish(topics.MAINTENANCE_TICKS, [OutboundMessage(MaintenanceTick().to_bytes())])  # Scheduler
    assert runtime.wait_idle(30)

    state = runtime.context.state
    run = state.get(run_path(run_id)) or {}
    assert run["status"] == "TIMED_OUT" and run["finalized"] is True
    assert "deadline" in run["error"]
    assert [s["status"] for s in list_stages(state, run_id)] == ["TIMED_OUT"]
    assert run_id not in active_slots(runtime.context)  # the quota slot is free again
    assert [m.attributes["event_type"] for m in alerts if m.attributes.get("run_id") == run_id] == ["run.timed_out"]
    runtime.bus.publish(topics.MAINTENANCE_TICKS, [OutboundMessage(MaintenanceTick().to_bytes())])
    assert runtime.wait_idle(30)
    assert len([m for m in alerts if m.attributes.get("run_id") == run_id]) == 1  # a second pass changes nothing


def _admit_without_publishing(ctx: Context, pipeline_id: str) -> str:
    """What a crash between admission and publish leaves: a QUEUED run nobody was told about."""
    created, _ = admit_run(ctx, "testco", pipeline_id, {}, Trigger(type="api"))
    return created.run_id


def test_queued_run_whose_request_was_lost_is_republished_then_given_up(make_runtime: Any) -> None:
    runtime = make_runtime()
    ctx = runtime.context
    lost = _admit_without_publishing(ctx, "fan_join")
    assert watchdog(ctx)["requeued"] == 0  # too young to be called lost
    assert watchdog(ctx, now=utc_now() + timedelta(minutes=3))["requeued"] == 1
    assert runtime.wait_idle(30)
    assert (ctx.state.get(run_path(lost)) or {})["status"] == "SUCCEEDED"

    stuck = _admit_without_publishing(ctx, "fan_join")
    report = watchdog(ctx, now=utc_now() + timedelta(hours=2))
    assert report["never_started"] == 1
    run = ctx.state.get(run_path(stuck)) or {}
    assert run["status"] == "FAILED" and "not started within" in run["error"]
    assert stuck not in active_slots(ctx)


def test_orphaned_claim_is_released_and_the_stage_runs(make_runtime: Any, settings: Settings) -> None:
    runtime = make_runtime()
    run_id = _admit_without_publishing(runtime.context, "fan_join")
    doc = runtime.context.state.get(run_path(run_id)) or {}
    request = RunRequest(
        run_id=run_id,
        tenant_id="testco",
        pipeline_id="fan_join",
        trigger=Trigger(type="api"),
        requested_at=parse_iso(doc["created_at"]),
    )
    crashed = Context(settings, _bus=InProcessBus())  # a process whose messages go nowhere: it is about to die
    start_run(crashed, request)
    root = next(s["stage_id"] for s in list_stages(crashed.state, run_id) if not s["depends_on"])
    claimed_at = iso(utc_now() - timedelta(minutes=5))
    assert crashed.state.create(claim_path(run_id, root, 1), {"at": claimed_at, "run_id": run_id})
    crashed.close()  # ... it claimed attempt 1 of the root stage and died before starting it

    report = watchdog(runtime.context)
    assert report["orphaned_claims"] == 1
    assert runtime.wait_idle(30)
    run = runtime.context.state.get(run_path(run_id)) or {}
    assert run["status"] == "SUCCEEDED", run
    assert watchdog(runtime.context, now=utc_now() + timedelta(minutes=5))["claims_cleaned"] >= 1  # garbage gone


def test_dead_letter_backlog_counts_what_nobody_could_act_on(make_runtime: Any) -> None:
    runtime = make_runtime()
    ctx = runtime.context
    runtime.bus.publish(topics.STAGE_TASKS, [OutboundMessage(b"not json at all", {"tenant_id": "testco"})])
    queued = _admit_without_publishing(ctx, "fan_join")
    dead = RunRequest(
        run_id=queued, tenant_id="testco", pipeline_id="fan_join", requested_at=utc_now(), trigger=Trigger()
    )
    runtime.bus.publish(
        topics.DEAD_LETTERS,
        [OutboundMessage(dead.to_bytes(), {"CloudPubSubDeadLetterSourceDeliveryCount": "10", "run_id": queued})],
    )
    assert runtime.wait_idle(30)
    report = watchdog(ctx)
    assert report["dead_letters_recent"] == 2
    assert report["dead_letters_unresolved"] == 1  # the garbage; the dead run request failed its run
    assert (ctx.state.get(run_path(queued)) or {})["status"] == "FAILED"
