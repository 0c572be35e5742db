"""Steps that run as jobs (debug.job, the stand-in for a BigQuery job): one job per attempt whatever the deliveries,
no invocation waiting longer than a poll window, the step's timeout cancelling the job, a broken re-check chain taken
over, and a job's failure handled like a step's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import shared.runs.stage_jobs as stage_jobs
from shared.clock import utc_now
from shared.contracts.state_paths import stage_path
from shared.processors.debug_job import job_path
from shared.processors.jobs import stage_job_id
from shared.runs.watchdog import watchdog
from tests.conftest import auth, execute, run_to_end
from tests.manual_clock import ManualClock

TENANT = "jobco"
PIPELINES = {
    "short_job": "steps:\n  - {step_id: q, ps_type: debug.job, config: {duration_s: 2, rows: 7}}\n"
    "  - {step_id: after, ps_type: debug.noop, depends_on: [q]}\n",
    "failing_job": "steps:\n  - {step_id: q, ps_type: debug.job, config: {duration_s: 0, fail: true}}\n",
    "endless_job": "steps:\n  - {step_id: q, ps_type: debug.job, timeout_minutes: 0.05, config: {duration_s: 600}}\n",
}


@pytest.fixture
def job_config(config_dir: Path) -> Path:
    folder = config_dir / TENANT / "pipelines"
    folder.mkdir(parents=True)
    (config_dir / TENANT / "tenant.yaml").write_text(f"tenant_id: {TENANT}\nname: Jobs\nplan: enterprise\n")
    for name, steps in PIPELINES.items():
        (folder / f"{name}.yaml").write_text(f"pipeline_id: {name}\n{steps}")
    return config_dir


def _submits(runtime: Any, run_id: str, stage_id: str = "q", attempt: int = 1) -> tuple[bool, int]:
    job_id = stage_job_id(run_id, stage_id, attempt)
    state = runtime.context.state
    calls = (state.get(f"{job_path(job_id)}_submits") or {}).get("calls", 0)
    return state.get(job_path(job_id)) is not None, int(calls)


@pytest.fixture(autouse=True)
def short_rounds(monkeypatch: Any) -> None:
    """Rounds of 0.3 s, so a 2 s job goes through several re-checks."""
    monkeypatch.setattr(stage_jobs, "POLL_WINDOW_S", 0.3)


def test_a_job_step_completes_through_rechecks_with_one_job_across_duplicate_deliveries(
    job_config: Path, make_runtime: Any
) -> None:
    runtime = make_runtime(duplicate_deliveries=2)  # every message, re-checks included, delivered twice
    run = run_to_end(runtime, TENANT, "short_job", timeout=60)
    assert run["status"] == "SUCCEEDED", run.get("error")
    q = next(s for s in run["stages"] if s["stage_id"] == "q")
    assert q["job_id"] == stage_job_id(run["run_id"], "q", 1) and q["rows_out"] == 7
    assert [a["status"] for a in q["attempts"]] == ["SUCCEEDED"]
    assert q["poll_seq"] >= 3  # several rounds, each claimed once although each re-check was delivered twice
    assert _submits(runtime, run["run_id"]) == (True, 1)  # one job, submitted once, although every task came twice


def test_a_failed_job_fails_its_stage_with_the_jobs_error(job_config: Path, make_runtime: Any) -> None:
    run = run_to_end(make_runtime(), TENANT, "failing_job", timeout=60)
    assert run["status"] == "FAILED"
    assert "failed (fail: true)" in run["stages"][0]["error"]


def test_the_steps_timeout_cancels_the_job_and_times_the_stage_out(job_config: Path, make_runtime: Any) -> None:
    runtime = make_runtime()
    run = run_to_end(runtime, TENANT, "endless_job", timeout=60)
    assert run["status"] == "TIMED_OUT", run
    job = runtime.context.state.get(job_path(stage_job_id(run["run_id"], "q", 1)))
    assert job["cancelled"] is True


def test_a_broken_recheck_chain_is_taken_over_after_it_goes_stale(
    job_config: Path, make_runtime: Any, monkeypatch: Any, ticking_clock: ManualClock
) -> None:
    monkeypatch.setattr(stage_jobs, "STALE_AFTER_S", 1.0)
    real = stage_jobs.publish_stage_tasks
    dropped: list[int | None] = []

    def lose_first_recheck(bus: Any, run: Any, ids: Any, poll_seq: int | None = None) -> None:
        if poll_seq is not None and not dropped:
            dropped.append(poll_seq)  # the worker died after its round, before the re-check was published
            return
        real(bus, run, ids, poll_seq=poll_seq)

    monkeypatch.setattr(stage_jobs, "publish_stage_tasks", lose_first_recheck)
    runtime = make_runtime()
    response = execute(runtime, TENANT, "short_job")
    run_id = response.body["run_id"]
    assert runtime.wait_idle(30)
    assert dropped == [1]
    assert runtime.context.state.get(stage_path(run_id, "q"))["status"] == "RUNNING"  # nobody polls it any more
    ticking_clock.advance(1.2)
    report = watchdog(runtime.context, now=utc_now())
    assert report["redispatched"] == 1
    assert runtime.wait_idle(30)
    run = runtime.call_api(
        "GET", f"/api/v1/tenants/{TENANT}/metadata/executions/{run_id}", headers=auth(runtime, TENANT)
    )
    assert run.body["status"] == "SUCCEEDED", run.body
    assert _submits(runtime, run_id) == (True, 1)


def test_bigquery_query_steps_run_as_jobs(runtime: Any) -> None:
    """acme's daily_sales: its bigquery.query stages record a job id and succeed through the job path."""
    run = run_to_end(runtime, "acme", "daily_sales", timeout=60)
    assert run["status"] == "SUCCEEDED", run.get("error")
    queries = [s for s in run["stages"] if s["ps_type"] == "bigquery.query"]
    assert queries and all(s["job_id"] == stage_job_id(run["run_id"], s["stage_id"], 1) for s in queries)
    assert all(s["rows_out"] and s["details"]["table"] for s in queries), queries
