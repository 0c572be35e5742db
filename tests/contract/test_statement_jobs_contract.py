"""StatementJobs (shared/ports/statement_jobs.py) on DuckDB and on BigQuery's API (bqemulator): a statement started
under an id runs once whatever the starts, its state is read without waiting, a failure keeps its mapped error, and an
unknown id is MISSING (what the engine then starts again under the same id)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.errors import TerminalError
from shared.ports.statement_jobs import StatementJobs, StatementStatus
from shared.ports.warehouse import Warehouse
from tests.processor_support import engine_fixture, open_warehouse  # noqa: F401


@pytest.fixture(name="warehouse")
def warehouse_fixture(engine: str, tmp_path: Path) -> Iterator[Warehouse]:
    wh = open_warehouse(engine, tmp_path / "warehouse.duckdb")
    yield wh
    wh.close()


def _until_done(jobs: StatementJobs, job_id: str, timeout_s: float = 60.0) -> StatementStatus:
    deadline = time.monotonic() + timeout_s
    while True:
        status = jobs.statement_status(job_id)
        if status.state != "RUNNING" or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def _dataset(warehouse: Warehouse) -> str:
    name = f"jobs_{uuid.uuid4().hex[:8]}"
    warehouse.create_dataset(name)
    return name


def test_a_statement_started_twice_under_one_id_runs_once(warehouse: Any) -> None:
    assert isinstance(warehouse, StatementJobs)
    ds = _dataset(warehouse)
    job_id = f"cdp_test_{uuid.uuid4().hex}"
    ddl = f"CREATE OR REPLACE TABLE {ds}.t AS SELECT x FROM UNNEST([1, 2, 3]) AS x"
    warehouse.start_statement(job_id, ddl)
    warehouse.start_statement(job_id, ddl)  # a redelivery: the job of this id exists, nothing new starts
    assert _until_done(warehouse, job_id).state == "DONE"
    assert warehouse.query(f"SELECT COUNT(*) AS n FROM {ds}.t").column("n")[0].as_py() == 3
    assert warehouse.statement_status(job_id).state == "DONE"  # read again later: still the outcome


def test_an_unknown_job_is_missing(warehouse: Any) -> None:
    assert warehouse.statement_status(f"cdp_never_{uuid.uuid4().hex}").state == "MISSING"


def test_a_failed_statement_keeps_its_terminal_error(warehouse: Any) -> None:
    ds = _dataset(warehouse)
    job_id = f"cdp_bad_{uuid.uuid4().hex}"
    warehouse.start_statement(job_id, f"CREATE OR REPLACE TABLE {ds}.t AS SELECT * FROM {ds}.no_such_table")
    status = _until_done(warehouse, job_id)
    assert status.state == "FAILED" and isinstance(status.error, TerminalError), status
    assert "no_such_table" in str(status.error)


def test_a_statement_takes_its_parameters(warehouse: Any) -> None:
    ds = _dataset(warehouse)
    job_id = f"cdp_params_{uuid.uuid4().hex}"
    warehouse.start_statement(job_id, f"CREATE OR REPLACE TABLE {ds}.p AS SELECT @n * 2 AS doubled", {"n": 21})
    assert _until_done(warehouse, job_id).state == "DONE"
    assert warehouse.query(f"SELECT doubled FROM {ds}.p").column("doubled")[0].as_py() == 42


@pytest.mark.parametrize("engine", ["duckdb"], indirect=True)
def test_cancelling_a_running_statement_stops_it(warehouse: Any) -> None:
    """DuckDB interrupts the job's own cursor (bqemulator ignores jobs.cancel; real BigQuery honours it)."""
    job_id = f"cdp_forever_{uuid.uuid4().hex}"
    forever = (
        "SELECT MAX(n) AS n FROM (WITH RECURSIVE t AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM t) SELECT n FROM t)"
    )
    warehouse.start_statement(job_id, forever)
    time.sleep(0.3)
    assert warehouse.statement_status(job_id).state == "RUNNING"
    warehouse.cancel_statement(job_id)
    status = _until_done(warehouse, job_id, timeout_s=10)
    assert status.state == "FAILED", status
