"""Crashes at the engine's awkward moments end in the right terminal state, with nothing lost or doubled."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import shared.metadata_tables as metadata
import shared.runs.engine as engine
import shared.runs.finalize as finalize
from shared.clock import utc_now
from shared.contracts.state_paths import run_path
from shared.runs.watchdog import watchdog
from tests.conftest import execute, run_to_end


class Crash(BaseException):
    """A worker dying: not an Exception, so nothing in the code under test can swallow it."""


def test_claim_orphaned_by_a_crash_before_start_is_taken_over(runtime: Any, monkeypatch: Any) -> None:
    real = engine.transition
    crashed: list[str] = []

    def die_before_first_start(store: Any, path: str, req: Any) -> Any:
        if req.kind == "stage" and req.to == "RUNNING" and path.endswith("/stages/b") and not crashed:
            crashed.append(path)
            raise Crash("worker died between claim and start")
        return real(store, path, req)

    monkeypatch.setattr(engine, "transition", die_before_first_start)
    run = run_to_end(runtime, "testco", "fan_join")
    assert crashed and run["status"] == "SUCCEEDED", run
    b = next(s for s in run["stages"] if s["stage_id"] == "b")
    assert [a["attempt"] for a in b["attempts"]] == [1]  # the orphaned attempt 1 was taken over, not burnt


def test_crash_during_finalisation_is_redone_once(runtime: Any, monkeypatch: Any) -> None:
    real = metadata.record_run
    calls: list[str] = []

    def die_once(ctx: Any, run: dict[str, Any], stages: Any) -> None:
        calls.append(run["run_id"])
        if len(calls) == 1:
            raise Crash("worker died while finalising")
        real(ctx, run, stages)

    monkeypatch.setattr(metadata, "record_run", die_once)
    response = execute(runtime, "testco", "fan_join")
    assert runtime.wait_idle(30)
    run_id = response.body["run_id"]
    doc = runtime.context.state.get(run_path(run_id))
    assert doc["status"] == "SUCCEEDED"
    if not doc.get("finalized"):  # the dead finaliser's lease still held: the watchdog redoes it after the lease
        report = watchdog(runtime.context, now=utc_now() + timedelta(seconds=finalize.FINALIZE_LEASE_S + 1))
        assert report["runs_finalized"] == 1
        assert runtime.wait_idle(30)
    assert runtime.context.state.get(run_path(run_id))["finalized"] is True
    wh = runtime.context.warehouse_for("testco")
    rows = wh.query("SELECT COUNT(*) AS n FROM testco_metadata.pipeline_executions WHERE run_id = @r", {"r": run_id})
    assert rows.column("n")[0].as_py() == 1
    events = [d for _, d in runtime.context.state.list("events") if d["run_id"] == run_id]
    assert sorted(e["type"] for e in events) == ["run.started", "run.succeeded"]


def test_retry_backoff_longer_than_the_redelivery_window_still_succeeds(runtime: Any) -> None:
    run = run_to_end(runtime, "testco", "slow_retry", timeout=60)
    assert run["status"] == "SUCCEEDED", run
    patient = run["stages"][0]
    assert [(a["attempt"], a["status"]) for a in patient["attempts"]] == [(1, "FAILED"), (2, "SUCCEEDED")]
    assert runtime.bus.stats.dead_lettered >= 1  # the waiting task outlived its deliveries and was re-published


def test_invalid_pipeline_is_a_400_with_file_and_line(runtime: Any, settings: Any) -> None:
    bad = settings.config_dir / "testco" / "pipelines" / "broken_yaml.yaml"
    bad.write_text("pipeline_id: broken_yaml\nsteps:\n  - {step_id: a, ps_type: nope.nothing}\n")
    response = execute(runtime, "testco", "broken_yaml")
    assert response.status == 400, response.body
    assert response.body["details"]["field"] == "pipeline_id"
    assert any("broken_yaml.yaml:3:" in issue for issue in response.body["details"]["issues"])
