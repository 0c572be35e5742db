"""Work stops with its time: a step's warehouse session interrupts its own DuckDB statements (and only those), and
`call_with_timeout` cancels the step's work before it reports the timeout."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.errors import PipelineError, TerminalError
from shared.processors.base import StepResult
from shared.runs.attempts import StageTimeout, call_with_timeout

FOREVER = "WITH RECURSIVE t AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM t) SELECT MAX(n) AS n FROM t"


@pytest.fixture
def wh(tmp_path: Path) -> Iterator[DuckDBWarehouse]:
    warehouse = DuckDBWarehouse(tmp_path / "acme.duckdb")
    yield warehouse
    warehouse.close()


class Background:
    """Runs `fn` on a thread and keeps what it raised."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except BaseException as exc:
            self.error = exc


def cpu_seconds_over(window_s: float) -> float:
    """CPU time this process (all threads) used during the next `window_s` of wall time."""
    start = time.process_time()
    time.sleep(window_s)
    return time.process_time() - start


def cpu_seconds_until(amount: float, timeout_s: float = 20.0) -> float:
    """Wait until this process has used `amount` more CPU seconds (or the timeout): on a loaded machine the query
    gets its CPU later, never less of it, so the wait adapts instead of a fixed window that a busy host fails."""
    start, deadline = time.process_time(), time.monotonic() + timeout_s
    while time.process_time() - start < amount and time.monotonic() < deadline:
        time.sleep(0.05)
    return time.process_time() - start


def test_cancel_running_interrupts_the_sessions_query_and_frees_the_cpu(wh: DuckDBWarehouse) -> None:
    session = wh.session()
    step = Background(lambda: session.query(FOREVER))
    busy = cpu_seconds_until(0.3)  # the query computing
    session.cancel_running()
    step.thread.join(5)
    assert not step.thread.is_alive()
    idle = cpu_seconds_over(0.5)
    assert busy >= 0.3 and idle < 0.1, (busy, idle)
    assert isinstance(step.error, PipelineError)
    with pytest.raises(TerminalError, match="cancelled"):
        session.query("SELECT 1 AS x")  # nothing new starts on a cancelled session
    assert wh.query("SELECT 1 AS x").to_pylist() == [{"x": 1}]  # the tenant's warehouse is still open


def test_cancelling_one_step_leaves_another_steps_query_running(wh: DuckDBWarehouse) -> None:
    first, second = wh.session(), wh.session()
    doomed = Background(lambda: first.query(FOREVER))
    survivor = Background(lambda: second.query(FOREVER))
    cpu_seconds_until(0.3)  # both computing
    first.cancel_running()
    doomed.thread.join(5)
    assert not doomed.thread.is_alive()
    still = cpu_seconds_until(0.3)  # still computing: only the cancelled session's statement was interrupted
    assert still >= 0.3 and survivor.thread.is_alive()
    second.cancel_running()
    survivor.thread.join(5)
    assert not survivor.thread.is_alive()


def test_a_cancelled_session_stops_a_batch_stream_and_multi_statement_scripts(wh: DuckDBWarehouse) -> None:
    wh.create_dataset("acme_work")
    session = wh.session()
    batches = session.query_batches("SELECT x FROM UNNEST(GENERATE_ARRAY(1, 10000)) AS x", batch_rows=100)
    next(batches)
    session.cancel_running()
    with pytest.raises(TerminalError, match="cancelled"):
        list(batches)
    with pytest.raises(TerminalError, match="cancelled"):
        session.execute("CREATE TABLE acme_work.t AS SELECT 1 AS x; CREATE TABLE acme_work.u AS SELECT 2 AS x")
    assert not wh.table_exists("acme_work.t")


def test_closing_a_session_keeps_the_database_open(wh: DuckDBWarehouse) -> None:
    session = wh.session()
    session.close()
    with pytest.raises(TerminalError):
        session.query("SELECT 1 AS x")
    assert wh.session().query("SELECT 2 AS x").to_pylist() == [{"x": 2}]


# -- call_with_timeout -------------------------------------------------------------------------------------------


def test_on_timeout_stops_the_work_before_the_timeout_is_reported() -> None:
    stop = threading.Event()
    order: list[str] = []

    def step() -> StepResult:
        stop.wait(30)
        order.append("step ended")
        return StepResult()

    def cancel() -> bool:
        order.append("cancelled")
        stop.set()
        return not order.count("step ended")

    with pytest.raises(StageTimeout):
        call_with_timeout(step, 0.1, on_timeout=cancel)
    order.append("timeout reported")
    assert order[0] == "cancelled" and order.index("step ended") < order.index("timeout reported")


def test_on_timeout_is_repeated_until_the_work_notices() -> None:
    """An interrupt that lands between two statements stops nothing: the next statement must be interrupted too."""
    calls: list[float] = []

    def step() -> StepResult:
        while len(calls) < 3:  # the first two interrupts "miss"
            time.sleep(0.01)
        return StepResult()

    def cancel() -> bool:
        calls.append(time.monotonic())
        return len(calls) < 3  # still running until the third lands

    with pytest.raises(StageTimeout):
        call_with_timeout(step, 0.05, on_timeout=cancel)
    assert len(calls) == 3


def test_work_that_ignores_cancellation_is_waited_for_only_the_grace() -> None:
    started = time.monotonic()
    with pytest.raises(StageTimeout):
        call_with_timeout(lambda: time.sleep(5), 0.05, on_timeout=lambda: True, stop_grace_s=0.3)
    assert 0.3 <= time.monotonic() - started < 2


def test_a_step_with_nothing_running_in_the_warehouse_is_not_waited_for() -> None:
    started = time.monotonic()
    with pytest.raises(StageTimeout):
        call_with_timeout(lambda: time.sleep(5), 0.05, on_timeout=lambda: False)
    assert time.monotonic() - started < 0.5
