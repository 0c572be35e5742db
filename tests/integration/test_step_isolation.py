"""A tenant's step, end to end on the embedded runtime: what its error shows, and that its work ends with its time."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import auth, execute, run_to_end, wait_for


@pytest.fixture
def typo_pipeline(config_dir: Path) -> str:
    (config_dir / "testco" / "pipelines" / "typo.yaml").write_text(
        """pipeline_id: typo
steps:
  - step_id: make
    ps_type: bigquery.query
    source: {query: "SELECT 1 AS id"}
    destination: {dataset: work, table: orders, write_mode: truncate}
  - step_id: misspelt
    ps_type: bigquery.query
    depends_on: [make]
    source: {query: "SELECT id FROM {tenant_id}_work.order"}
    destination: {dataset: work, table: copy, write_mode: truncate}
"""
    )
    return "typo"


def test_the_error_a_tenant_reads_names_its_mistake_and_nothing_else(runtime: Any, typo_pipeline: str) -> None:
    run = run_to_end(runtime, "testco", typo_pipeline)
    assert run["status"] == "FAILED"
    stage = next(s for s in run["stages"] if s["stage_id"] == "misspelt")
    texts = [stage["error"], *(a["error"] for a in stage["attempts"])]
    for text in texts:
        assert "Table with name order does not exist" in text
        assert "Did you mean" not in text and "LINE 1" not in text and "DuckDB SQL" not in text
        assert str(runtime.context.settings.home) not in text and str(Path.home()) not in text


@pytest.fixture
def runaway_pipeline(config_dir: Path) -> str:
    """An unbounded recursive query under a 2.4 s timeout: it would run (at full CPU) until the process ends."""
    (config_dir / "testco" / "pipelines" / "runaway.yaml").write_text(
        """pipeline_id: runaway
steps:
  - step_id: forever
    ps_type: bigquery.query
    timeout_minutes: 0.04
    retries: {max_attempts: 1}
    source:
      query: "WITH RECURSIVE t AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM t) SELECT MAX(n) AS n FROM t"
    destination: {dataset: work, table: never, write_mode: truncate}
"""
    )
    return "runaway"


def cpu_seconds_over(window_s: float) -> float:
    """CPU time this process (every thread) used during the next `window_s` of wall time."""
    start = time.process_time()
    time.sleep(window_s)
    return time.process_time() - start


def _job_running(runtime: Any) -> bool:
    from shared.processors.jobs import stage_job_id

    runs = [doc for _, doc in runtime.context.state.list("runs") if doc.get("pipeline_id") == "runaway"]
    job_id = stage_job_id(str(runs[0]["run_id"]), "forever", 1) if runs else ""
    return bool(runs) and runtime.context.warehouse_for("testco").statement_status(job_id).state == "RUNNING"


def test_a_timed_out_query_stops_using_the_cpu(runtime: Any, runaway_pipeline: str) -> None:
    started = execute(runtime, "testco", runaway_pipeline)
    assert started.status == 202, started.body
    # bigquery.query runs as a job: its statement on a job thread of the tenant's warehouse (shared/adapters)
    wait_for(lambda: _job_running(runtime), timeout=10)
    busy = cpu_seconds_over(1.0)  # the query running: about one core, far less on a loaded shared machine
    assert runtime.wait_idle(30)
    idle = cpu_seconds_over(1.0)  # right after TIMED_OUT
    print(f"runaway query: {busy:.2f} CPU-s/s while running, {idle:.3f} CPU-s/s after TIMED_OUT")
    got = runtime.call_api(
        "GET", f"/api/v1/tenants/testco/metadata/executions/{started.body['run_id']}", headers=auth(runtime, "testco")
    )
    assert got.body["stages"][0]["status"] == "TIMED_OUT", got.body
    # The query ran (it used CPU) and, TIMED_OUT, uses none: the second figure is the point. The first is only a
    # sign of life, so it asks little (a 2-core host shared with other jobs may give it a tenth of a core).
    assert busy > 0.02 and idle < 0.15, (busy, idle)
    wait_for(lambda: not _job_running(runtime), timeout=5)  # the job itself ended too
