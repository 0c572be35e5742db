"""Scheduled runs through the real scheduled_trigger function on the embedded runtime: exactly one run per slot
whatever Scheduler and Pub/Sub repeat, DST-correct slots, misfire policies, and `cloudact schedule tick`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from shared.app.embedded import to_cloud_event
from shared.contracts import topics
from shared.contracts.envelope import OutboundMessage, ReceivedMessage
from shared.contracts.messages import ScheduleTick
from shared.runs.store import list_runs
from shared.runtime.context import Context
from shared.scheduling.local import tick_message

NIGHTLY = """pipeline_id: nightly
schedule: {cron: "30 2 * * *", timezone: Europe/Brussels}
steps:
  - {step_id: only, ps_type: debug.noop}
"""
DAILY_CATCH_UP = """pipeline_id: daily_catch_up
schedule: {cron: "0 3 * * *", timezone: UTC, misfire: catch_up}
steps:
  - {step_id: only, ps_type: debug.noop}
"""


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def add_pipelines(config_dir: Path, *texts: str) -> None:
    for text in texts:
        name = text.split("\n", 1)[0].split(":", 1)[1].strip()
        (config_dir / "testco" / "pipelines" / f"{name}.yaml").write_text(text)


def scheduled_runs(runtime: Any, pipeline_id: str) -> list[dict[str, Any]]:
    return list_runs(runtime.context.state, "testco", pipeline_id=pipeline_id, limit=100)


def static_scheduler_tick(runtime: Any, pipeline_id: str, published: str, message_id: str) -> None:
    """What Cloud Scheduler's Pub/Sub job delivers: a fixed body without a schedule time, dated by publishTime."""
    body = json.dumps({"kind": "schedule.tick", "version": 1, "tenant_id": "testco", "pipeline_id": pipeline_id})
    message = ReceivedMessage(body.encode(), {"tenant_id": "testco"}, message_id, published, topics.SCHEDULE_TICKS)
    from functions.scheduled_trigger import scheduled_trigger

    scheduled_trigger(to_cloud_event(runtime.settings.project, message))


def test_the_same_tick_twice_gives_one_run(make_runtime: Any, config_dir: Path) -> None:
    add_pipelines(config_dir, NIGHTLY)
    runtime = make_runtime(duplicate_deliveries=2)  # and Pub/Sub delivers each publish twice
    slot = datetime.fromisoformat("2026-06-10T02:30:00+02:00")
    tick = tick_message("testco", "nightly", slot)
    runtime.bus.publish(topics.SCHEDULE_TICKS, [tick])
    runtime.bus.publish(topics.SCHEDULE_TICKS, [tick])  # Scheduler fired twice
    assert runtime.wait_idle(30)
    runs = scheduled_runs(runtime, "nightly")
    assert len(runs) == 1, runs
    assert runs[0]["status"] == "SUCCEEDED"
    assert runs[0]["trigger"]["type"] == "schedule"
    assert datetime.fromisoformat(runs[0]["trigger"]["scheduled_for"]) == slot
    assert runs[0]["run_date"] == "2026-06-10"


def test_fall_back_repeat_of_a_static_scheduler_tick_is_the_same_run(make_runtime: Any, config_dir: Path) -> None:
    add_pipelines(config_dir, NIGHTLY)
    runtime = make_runtime()
    static_scheduler_tick(runtime, "nightly", "2026-10-25T00:30:01.512Z", "m1")  # 02:30 CEST
    static_scheduler_tick(runtime, "nightly", "2026-10-25T00:30:01.512Z", "m1")  # Pub/Sub redelivery
    static_scheduler_tick(runtime, "nightly", "2026-10-25T01:30:02.004Z", "m2")  # 02:30 again, now CET
    assert runtime.wait_idle(30)
    runs = scheduled_runs(runtime, "nightly")
    assert len(runs) == 1
    assert runs[0]["trigger"]["scheduled_for"] == "2026-10-25T02:30:00+02:00"
    assert runs[0]["status"] == "SUCCEEDED"


def test_spring_forward_tick_runs_once_for_the_shifted_slot(make_runtime: Any, config_dir: Path) -> None:
    add_pipelines(config_dir, NIGHTLY)
    runtime = make_runtime()
    static_scheduler_tick(runtime, "nightly", "2026-03-28T01:30:00.2Z", "a")  # 02:30 CET, the day before
    static_scheduler_tick(runtime, "nightly", "2026-03-29T01:00:00.9Z", "b")  # 02:30 does not exist: 03:00 CEST
    assert runtime.wait_idle(30)
    runs = sorted(scheduled_runs(runtime, "nightly"), key=lambda r: r["trigger"]["scheduled_for"])
    assert [r["trigger"]["scheduled_for"] for r in runs] == ["2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00"]
    assert [r["run_date"] for r in runs] == ["2026-03-28", "2026-03-29"]


def test_misfire_skip_drops_a_stale_tick_and_catch_up_fills_the_gap(make_runtime: Any, config_dir: Path) -> None:
    add_pipelines(config_dir, NIGHTLY, DAILY_CATCH_UP)
    runtime = make_runtime()
    publish = runtime.bus.publish
    publish(topics.SCHEDULE_TICKS, [tick_message("testco", "nightly", utc(2026, 6, 12, 0, 30))])
    assert runtime.wait_idle(30)
    publish(topics.SCHEDULE_TICKS, [tick_message("testco", "nightly", utc(2026, 6, 10, 0, 30))])  # late, older
    publish(topics.SCHEDULE_TICKS, [tick_message("testco", "daily_catch_up", utc(2026, 6, 1, 3))])
    assert runtime.wait_idle(30)
    publish(topics.SCHEDULE_TICKS, [tick_message("testco", "daily_catch_up", utc(2026, 6, 4, 3))])  # 2 days missed
    assert runtime.wait_idle(30)
    nightly = scheduled_runs(runtime, "nightly")
    assert [r["run_date"] for r in nightly] == ["2026-06-12"]  # skip: the stale tick made no run
    caught_up = sorted(r["run_date"] for r in scheduled_runs(runtime, "daily_catch_up"))
    assert caught_up == ["2026-06-01", "2026-06-02", "2026-06-03", "2026-06-04"]


def test_tick_for_a_pipeline_without_schedule_is_acked_without_a_run(make_runtime: Any) -> None:
    runtime = make_runtime()
    tick = ScheduleTick(tenant_id="testco", pipeline_id="flaky", scheduled_for=utc(2026, 6, 1))
    runtime.bus.publish(topics.SCHEDULE_TICKS, [OutboundMessage(tick.to_bytes(), {"tenant_id": "testco"})])
    assert runtime.wait_idle(30)
    assert scheduled_runs(runtime, "flaky") == []
    assert runtime.bus.stats.dead_lettered == 0 and runtime.bus.stats.nacked == 0


def test_cloudact_schedule_tick_fires_what_is_due_once(settings: Any, config_dir: Path, monkeypatch: Any) -> None:
    from shared.cli.main import cli

    add_pipelines(config_dir, NIGHTLY)
    monkeypatch.setenv("CLOUDACT_HOME", str(settings.home))
    monkeypatch.setenv("CLOUDACT_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("CLOUDACT_RUNTIME", "embedded")
    runner = CliRunner()
    first = runner.invoke(cli, ["schedule", "tick", "--at", "2026-10-25T02:50:00+02:00", "--tenant", "testco"])
    assert first.exit_code == 0, first.output
    assert "nightly" in first.output and "2026-10-25T02:30+02:00" in first.output and "SUCCEEDED" in first.output
    again = runner.invoke(cli, ["schedule", "tick", "--at", "2026-10-25T05:00:00+01:00", "--tenant", "testco"])
    assert again.exit_code == 0, again.output
    assert "already fired: same run" in again.output, again.output
    listed = runner.invoke(cli, ["schedule", "list", "--at", "2026-10-25T05:00:00+01:00"])
    assert listed.exit_code == 0 and "2026-10-26T02:30+01:00" in listed.output, listed.output
    bad = runner.invoke(cli, ["schedule", "tick", "--at", "yesterday"])
    assert bad.exit_code == 2 and "ISO 8601" in bad.output
    state = Context(settings).state
    assert len(list_runs(state, "testco", pipeline_id="nightly")) == 1


def test_schedule_tick_hours_after_a_skip_slot_fires_nothing(settings: Any, config_dir: Path, monkeypatch: Any) -> None:
    """acme's daily_sales runs at 03:00 Brussels with `misfire: skip`: a tick at 19:00 must not run the 03:00 slot."""
    from shared.cli.main import cli

    monkeypatch.setenv("CLOUDACT_HOME", str(settings.home))
    monkeypatch.setenv("CLOUDACT_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("CLOUDACT_RUNTIME", "embedded")
    late = CliRunner().invoke(cli, ["schedule", "tick", "--at", "2026-12-01T19:00:00+01:00", "--tenant", "acme"])
    assert late.exit_code == 0, late.output
    assert "misfire skipped: slot is 16 h 00 min old" in " ".join(late.output.split()), late.output
    state = Context(settings).state
    assert list_runs(state, "acme", pipeline_id="daily_sales") == []
    on_time = CliRunner().invoke(cli, ["schedule", "tick", "--at", "2026-12-02T03:00:05+01:00", "--tenant", "acme"])
    assert on_time.exit_code == 0 and "SUCCEEDED" in on_time.output, on_time.output
    (run,) = list_runs(state, "acme", pipeline_id="daily_sales")
    assert run["trigger"]["scheduled_for"] == "2026-12-02T03:00:00+01:00"


def test_a_static_scheduler_tick_delivered_late_fires_nothing_under_skip(make_runtime: Any, config_dir: Path) -> None:
    add_pipelines(config_dir, NIGHTLY)
    runtime = make_runtime()
    late = tick_message("testco", "nightly", utc(2026, 6, 10, 0, 30), ticked_at=utc(2026, 6, 10, 16, 30))
    runtime.bus.publish(topics.SCHEDULE_TICKS, [late])
    assert runtime.wait_idle(30)
    assert scheduled_runs(runtime, "nightly") == []
    assert runtime.bus.stats.dead_lettered == 0 and runtime.bus.stats.nacked == 0  # acked: nothing to retry
