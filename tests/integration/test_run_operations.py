"""Run operations through the API and the CLI: an idempotency key reused for a different request is a 409 naming
the differences; `cloudact runs cancel | rerun [--from-failure]`; backfills start at most max_active_runs at once
(the rest when the maintenance tick finds room) and a repeated backfill retries its failed dates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from shared.cli.main import cli
from shared.contracts.messages import Trigger
from shared.contracts.state_paths import run_path
from shared.runs.admission import admit_run
from shared.runs.backfill import advance_for_run, advance_waiting, backfill_path_of_run
from shared.runs.store import list_runs
from shared.runtime.context import Context
from shared.runtime.settings import Settings
from tests.conftest import auth, execute, run_to_end

FLIPPING = """pipeline_id: flipping
steps:
  - {step_id: only, ps_type: debug.noop, config: {fail_terminal: %s}}
"""


def test_the_same_idempotency_key_with_another_body_is_a_409_naming_the_differences(runtime: Any) -> None:
    first = execute(runtime, "testco", "warehouse_rows", parameters={"n": 5}, idempotency_key="k1")
    assert first.status == 202, first.body
    same = execute(runtime, "testco", "warehouse_rows", parameters={"n": "5"}, idempotency_key="k1")
    assert same.status == 200 and same.body["run_id"] == first.body["run_id"]  # "5" is the same int parameter
    other = execute(runtime, "testco", "warehouse_rows", parameters={"n": 6}, idempotency_key="k1")
    assert other.status == 409, other.body
    assert other.body["error"] == "CONFLICT" and other.body["details"]["field"] == "idempotency_key"
    assert other.body["details"]["run_id"] == first.body["run_id"]
    assert other.body["details"]["differences"] == [{"field": "parameters.n", "first_request": 5, "this_request": 6}]
    assert "differs in: parameters.n" in other.body["message"]
    elsewhere = execute(runtime, "testco", "fan_join", idempotency_key="k1")
    assert elsewhere.status == 409
    assert [d["field"] for d in elsewhere.body["details"]["differences"]] == ["pipeline_id", "parameters.n"]
    assert runtime.wait_idle(30)
    assert len(list_runs(runtime.context.state, "testco", limit=10)) == 1


@pytest.fixture
def cli_home(runtime: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The CLI on the same folders as `runtime` (closed here: the CLI hosts its own embedded runtime)."""
    runtime.close()
    monkeypatch.setenv("CLOUDACT_HOME", str(settings.home))
    monkeypatch.setenv("CLOUDACT_CONFIG_DIR", str(settings.config_dir))
    monkeypatch.setenv("CLOUDACT_RUNTIME", "embedded")
    return settings


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_cli_rerun_in_full_and_from_failure(make_runtime: Any, settings: Settings, monkeypatch: Any) -> None:
    runtime = make_runtime()
    succeeded = run_to_end(runtime, "testco", "fan_join")["run_id"]
    failed = run_to_end(runtime, "testco", "broken")["run_id"]
    runtime.close()
    monkeypatch.setenv("CLOUDACT_HOME", str(settings.home))
    monkeypatch.setenv("CLOUDACT_CONFIG_DIR", str(settings.config_dir))
    again = invoke("runs", "rerun", succeeded, "--quiet")
    assert again.exit_code == 0, again.output
    assert f"re-runs {succeeded} in full" in again.output and "SUCCEEDED" in again.output
    refused = invoke("runs", "rerun", succeeded, "--from-failure")
    assert refused.exit_code == 1 and "409 CONFLICT" in refused.output and "from its failure" in refused.output
    resumed = invoke("runs", "rerun", failed, "--from-failure", "--quiet")
    assert resumed.exit_code == 1 and f"re-runs {failed} from its failure" in resumed.output  # broken fails again
    state = Context(settings).state
    reruns = [r for r in list_runs(state, "testco", limit=10) if r["trigger"]["type"] == "rerun"]
    assert {r.get("resume_from_run") for r in reruns} == {None, failed}
    assert {r.get("rerun_of") for r in reruns} == {succeeded, None}
    assert invoke("runs", "rerun", "run_nope").output.strip().endswith("no run 'run_nope' (see `cloudact runs list`)")


def test_cli_cancel_a_queued_run_refuses_a_finished_one(
    make_runtime: Any, settings: Settings, monkeypatch: Any
) -> None:
    runtime = make_runtime()
    done = run_to_end(runtime, "testco", "fan_join")["run_id"]
    queued, _ = admit_run(runtime.context, "testco", "fan_join", {}, Trigger(type="api"))  # recorded, not published
    runtime.close()
    monkeypatch.setenv("CLOUDACT_HOME", str(settings.home))
    monkeypatch.setenv("CLOUDACT_CONFIG_DIR", str(settings.config_dir))
    cancelled = invoke("runs", "cancel", queued.run_id)
    assert cancelled.exit_code == 0 and "CANCELLED" in cancelled.output, cancelled.output
    state = Context(settings).state
    assert (state.get(run_path(queued.run_id)) or {})["status"] == "CANCELLED"
    again = invoke("runs", "cancel", queued.run_id)
    assert again.exit_code == 0  # idempotent
    finished = invoke("runs", "cancel", done)
    assert finished.exit_code == 1 and f"run {done} is already SUCCEEDED" in finished.output


def test_backfill_starts_at_most_max_active_runs_and_the_tick_starts_the_rest(runtime: Any, monkeypatch: Any) -> None:
    import shared.runs.finalize as finalize

    # The run-end hook lost (e.g. its worker died after the run's alert): the maintenance tick starts the rest.
    monkeypatch.setattr(finalize, "_start_next_backfill_dates", lambda ctx, run: None)
    path = "/api/v1/tenants/testco/pipelines/fan_join/backfill"
    body = {"start_date": "2026-02-01", "end_date": "2026-02-05", "max_active_runs": 2}
    first = runtime.call_api("POST", path, body, auth(runtime, "testco"))
    assert first.status == 202, first.body
    assert [r["run_date"] for r in first.body["runs"]] == ["2026-02-01", "2026-02-02"]
    assert first.body["pending_dates"] == ["2026-02-03", "2026-02-04", "2026-02-05"]
    assert first.body["max_active_runs"] == 2 and not first.body["complete"]
    assert runtime.wait_idle(30)
    ctx = runtime.context
    assert advance_waiting(ctx) == 2  # the maintenance tick: two finished, two more start
    assert runtime.wait_idle(30)
    assert advance_waiting(ctx) == 1 and runtime.wait_idle(30)
    assert advance_waiting(ctx) == 0
    runs = list_runs(ctx.state, "testco", pipeline_id="fan_join", limit=10)
    assert sorted(r["run_date"] for r in runs) == [f"2026-02-0{d}" for d in range(1, 6)]
    assert all(r["status"] == "SUCCEEDED" for r in runs)
    done = runtime.call_api("POST", path, body, auth(runtime, "testco"))
    assert done.status == 200 and done.body["complete"] and done.body["succeeded"]


def test_cli_backfill_follows_to_the_end_and_a_repeat_retries_failed_dates(
    cli_home: Settings, config_dir: Path
) -> None:
    pipeline = config_dir / "testco" / "pipelines" / "flipping.yaml"
    pipeline.write_text(FLIPPING % "true")
    args = ("backfill", "testco", "flipping", "--from", "2026-03-01", "--to", "2026-03-04", "--max-active", "2")
    failing = invoke(*args)
    assert failing.exit_code == 1, failing.output
    assert "4 FAILED" in failing.output and "repeat the same command to retry the failed dates" in failing.output
    pipeline.write_text(FLIPPING % "false")  # the fix
    retried = invoke(*args)
    assert retried.exit_code == 0, retried.output
    assert "retrying 4 failed date(s): 2026-03-01, 2026-03-02, 2026-03-03, 2026-03-04" in retried.output
    assert "4 SUCCEEDED" in retried.output and "attempt 2" in retried.output
    state = Context(cli_home).state
    runs = list_runs(state, "testco", pipeline_id="flipping", limit=20)
    assert sorted((r["run_date"], r["status"]) for r in runs) == sorted(
        [(f"2026-03-0{d}", s) for d in range(1, 5) for s in ("FAILED", "SUCCEEDED")]
    )
    overlap = max(
        sum(1 for o in runs if o["started_at"] <= r["started_at"] < o["ended_at"]) for r in runs if r["started_at"]
    )
    assert overlap <= 2  # never more than --max-active running at once
    again = invoke(*args)
    assert again.exit_code == 0 and "retrying" not in again.output  # nothing failed: nothing new
    assert len(list_runs(state, "testco", pipeline_id="flipping", limit=20)) == 8


def test_a_finished_backfill_run_starts_the_next_waiting_date(runtime: Any) -> None:
    """The run's end (shared/runs/finalize.py) starts the next held-back date: the chain runs to the end by itself."""
    path = "/api/v1/tenants/testco/pipelines/fan_join/backfill"
    body = {"start_date": "2026-04-01", "end_date": "2026-04-03", "max_active_runs": 1, "backfill_id": "chain"}
    first = runtime.call_api("POST", path, body, auth(runtime, "testco"))
    assert [r["run_date"] for r in first.body["runs"]] == ["2026-04-01"]
    assert runtime.wait_idle(30)
    ctx = runtime.context
    run = ctx.state.get(run_path(first.body["runs"][0]["run_id"]))
    assert backfill_path_of_run(run) is not None
    assert advance_for_run(ctx, run) == 0  # nothing waits any more: each run's end started the next date
    assert advance_waiting(ctx) == 0
    assert advance_for_run(ctx, {"tenant_id": "testco", "idempotency_key": "k"}) == 0  # not a backfill's run
    runs = list_runs(ctx.state, "testco", pipeline_id="fan_join", limit=10)
    assert sorted(r["run_date"] for r in runs) == ["2026-04-01", "2026-04-02", "2026-04-03"]
    assert all(r["status"] == "SUCCEEDED" for r in runs)
