"""End-to-end on the embedded runtime: api function -> run_starter -> stage_worker(s) -> notifier, all through the
real function entry points and the in-process bus (at-least-once, retries, dead-letter)."""

from __future__ import annotations

from typing import Any

from shared.contracts.state_paths import run_path
from tests.conftest import execute, run_to_end


def _statuses(run: dict[str, Any]) -> dict[str, str]:
    return {s["stage_id"]: s["status"] for s in run["stages"]}


def _events(runtime: Any, run_id: str) -> list[dict[str, Any]]:
    return [d for _, d in runtime.context.state.list("events") if d["run_id"] == run_id]


def test_sample_pipeline_succeeds_and_writes_rows_and_history(runtime: Any) -> None:
    run = run_to_end(runtime, "acme", "daily_sales")
    assert run["status"] == "SUCCEEDED", run
    assert _statuses(run) == dict.fromkeys(
        ["load_orders", "revenue_by_region", "revenue_by_product", "daily_summary"], "SUCCEEDED"
    )
    assert [s["rows_out"] for s in run["stages"]] == [5000, 4, 25, 1]
    wh = runtime.context.warehouse_for("acme")
    total = wh.query("SELECT SUM(amount) AS s FROM acme_sales.orders").column("s")[0].as_py()
    summary = wh.query("SELECT revenue FROM acme_sales.daily_summary").column("revenue")[0].as_py()
    assert abs(total - summary) < 0.01
    history = wh.query(
        "SELECT status FROM acme_metadata.pipeline_executions "
        "WHERE execution_date >= CURRENT_DATE() - 7 AND run_id = @run_id",
        {"run_id": run["run_id"]},
    )
    assert history.column("status").to_pylist() == ["SUCCEEDED"]
    steps = wh.query(
        "SELECT step_id, attempt, status FROM acme_metadata.step_executions WHERE run_id = @r", {"r": run["run_id"]}
    )
    assert sorted(steps.column("step_id").to_pylist()) == sorted(_statuses(run))
    types = [e["type"] for e in _events(runtime, run["run_id"])]
    assert sorted(types) == ["run.started", "run.succeeded"]


def test_join_fires_once_and_branches_run_in_parallel(runtime: Any) -> None:
    run = run_to_end(runtime, "testco", "fan_join")
    assert run["status"] == "SUCCEEDED"
    stages = {s["stage_id"]: s for s in run["stages"]}
    assert all(len(s["attempts"]) == 1 for s in stages.values())
    # b and c each sleep 50 ms; they overlap when they run in parallel
    assert stages["b"]["started_at"] < stages["c"]["ended_at"] and stages["c"]["started_at"] < stages["b"]["ended_at"]
    assert stages["d"]["started_at"] >= max(stages["b"]["ended_at"], stages["c"]["ended_at"])


def test_every_message_delivered_twice_gives_one_run_each_stage_once_no_duplicate_rows(make_runtime: Any) -> None:
    runtime = make_runtime(duplicate_deliveries=2)
    run = run_to_end(runtime, "testco", "warehouse_rows", parameters={"n": 100})
    assert run["status"] == "SUCCEEDED"
    assert runtime.bus.stats.delivered >= 2 * runtime.bus.stats.published
    for stage in run["stages"]:
        assert [a["attempt"] for a in stage["attempts"]] == [1], stage  # executed exactly once
    claims = [i for i, _ in runtime.context.state.list("claims")]
    assert len(claims) == 4
    wh = runtime.context.warehouse_for("testco")
    assert wh.query("SELECT COUNT(*) AS n FROM testco_work.both").column("n")[0].as_py() == 100  # append mode
    runs = wh.query("SELECT COUNT(*) AS n FROM testco_metadata.pipeline_executions").column("n")[0].as_py()
    steps = wh.query("SELECT COUNT(*) AS n FROM testco_metadata.step_executions").column("n")[0].as_py()
    assert (runs, steps) == (1, 4)
    assert len([i for i, _ in runtime.context.state.list("runs")]) == 1
    types = sorted(e["type"] for e in _events(runtime, run["run_id"]))
    assert types == ["run.started", "run.succeeded"]  # the notifier dropped the duplicates


def test_transient_failures_are_retried_then_succeed_with_attempts_recorded(runtime: Any) -> None:
    run = run_to_end(runtime, "testco", "flaky")
    assert run["status"] == "SUCCEEDED"
    wobbly = next(s for s in run["stages"] if s["stage_id"] == "wobbly")
    assert [(a["attempt"], a["status"]) for a in wobbly["attempts"]] == [(1, "FAILED"), (2, "FAILED"), (3, "SUCCEEDED")]
    assert "injected transient failure on attempt 1" in wobbly["attempts"][0]["error"]
    assert wobbly["rows_out"] == 7
    steps = runtime.context.warehouse_for("testco").query(
        "SELECT attempt, status FROM testco_metadata.step_executions WHERE step_id = 'wobbly' ORDER BY attempt"
    )
    assert steps.to_pylist() == [
        {"attempt": 1, "status": "FAILED"},
        {"attempt": 2, "status": "FAILED"},
        {"attempt": 3, "status": "SUCCEEDED"},
    ]
    assert sum(1 for e in _events(runtime, run["run_id"]) if e["type"] == "stage.retrying") == 2


def test_terminal_failure_fails_run_skips_dependants_and_is_not_redelivered(runtime: Any) -> None:
    run = run_to_end(runtime, "testco", "broken")
    assert run["status"] == "FAILED"
    assert _statuses(run) == {
        "extract": "FAILED",
        "transform": "SKIPPED",
        "publish": "SKIPPED",
        "side_branch": "SUCCEEDED",
        "alert_on_failure": "SUCCEEDED",
    }
    assert "fail_terminal" in run["error"] and run["failed_stage"] == "extract"
    extract = next(s for s in run["stages"] if s["stage_id"] == "extract")
    assert len(extract["attempts"]) == 1  # terminal: never retried
    events = {e["type"] for e in _events(runtime, run["run_id"])}
    assert {"stage.failed", "run.failed"} <= events
    assert runtime.bus.stats.dead_lettered == 0
    assert runtime.bus.stats.nacked == 0


def test_step_that_keeps_failing_gives_up_after_max_attempts(runtime: Any) -> None:
    run = run_to_end(runtime, "testco", "always_failing")
    assert run["status"] == "FAILED"
    assert _statuses(run) == {"hopeless": "FAILED", "after": "SKIPPED"}
    hopeless = next(s for s in run["stages"] if s["stage_id"] == "hopeless")
    assert len(hopeless["attempts"]) == 3
    assert "gave up after 3 attempts" in hopeless["error"]
    assert runtime.bus.stats.dead_lettered == 0


def test_stage_timeout_is_enforced(runtime: Any) -> None:
    run = run_to_end(runtime, "testco", "slow")
    assert run["status"] == "TIMED_OUT"
    assert run["stages"][0]["status"] == "TIMED_OUT"
    assert run["stages"][0]["duration_ms"] < 1500


def test_same_idempotency_key_returns_same_run(runtime: Any) -> None:
    first = execute(runtime, "testco", "fan_join", idempotency_key="nightly-2026-11-25")
    second = execute(runtime, "testco", "fan_join", idempotency_key="nightly-2026-11-25")
    assert first.status == 202 and second.status == 200
    assert first.body["run_id"] == second.body["run_id"]
    assert runtime.wait_idle(30)
    assert len(runtime.context.state.list("runs")) == 1


def test_crash_between_hops_is_resumed_by_redelivery(runtime: Any, monkeypatch: Any) -> None:
    """The worker dies after recording its stage SUCCEEDED but before dispatching the next stage."""
    import shared.runs.stage_slots as stage_slots  # the DAG dispatches through the tenant's stage slots

    real = stage_slots.publish_stage_tasks
    crashed: list[str] = []

    def crash_once(bus: Any, run: dict[str, Any], stage_ids: Any) -> None:
        ids = list(stage_ids)
        if ids and not crashed and ids != ["a"]:
            crashed.append(",".join(ids))
            raise SystemExit("simulated worker crash")  # not an Exception: nothing in the app can swallow it
        real(bus, run, ids)

    monkeypatch.setattr(stage_slots, "publish_stage_tasks", crash_once)
    run = run_to_end(runtime, "testco", "fan_join")
    assert crashed == ["b,c"]
    assert run["status"] == "SUCCEEDED"
    assert all(len(s["attempts"]) == 1 for s in run["stages"])


def test_undecodable_message_is_dead_lettered_once_not_retried(runtime: Any) -> None:
    from shared.contracts import topics
    from shared.contracts.envelope import OutboundMessage

    runtime.bus.publish(topics.STAGE_TASKS, [OutboundMessage(b"\xff not json", {"tenant_id": "testco"})])
    assert runtime.wait_idle(10)
    assert runtime.bus.stats.nacked == 0
    assert runtime.bus.stats.published == 2  # the bad message + its copy on the dead-letter topic
    assert runtime.context.state.get(run_path("nope")) is None
