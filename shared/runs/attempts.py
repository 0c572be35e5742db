"""One attempt of a stage: running the processor under its timeout, and the record kept of each attempt."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.clock import iso
from shared.contracts.states import AttemptStatus
from shared.errors import TerminalError
from shared.pipelines.spec import StepSpec
from shared.processors.base import StepResult

MAX_ERROR_CHARS = 2000
"""An error kept on a stage (per attempt, and its last/final error): enough to act on, and with up to 20 attempts a
stage document stays far below Firestore's 1 MiB (make gcp-parity's limits audit measures it)."""
STOP_GRACE_S = 2.0
"""How long `on_timeout` is repeated while it reports work still running (a DuckDB interrupt lands within
milliseconds, so this is only an upper bound)."""
_RECANCEL_EVERY_S = 0.05

log = logging.getLogger(__name__)


class StageTimeout(Exception):
    pass


def call_with_timeout(
    fn: Callable[[], Any],
    timeout_s: float,
    on_timeout: Callable[[], bool] | None = None,
    stop_grace_s: float = STOP_GRACE_S,
) -> StepResult:
    """Run the processor on its own thread so a hung step cannot hold the worker past its timeout.

    When the time is up, `on_timeout` (the step's warehouse session's `cancel_running`) stops the work the step
    started, before StageTimeout lets the caller finish the stage and release its slot: abandoning the thread alone
    would leave its query running at full CPU. It is called again every 50 ms while it returns True (work of the step
    still running: an interrupt that reached a statement about to start stops nothing), for at most `stop_grace_s`.
    A step busy outside the warehouse (a sleep, an HTTP read) is not waited for: it has no query to stop.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # handed back to the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target, name="cloudact-step", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        if on_timeout is not None:
            _stop(worker, on_timeout, stop_grace_s)
        raise StageTimeout()
    if "error" in box:
        raise box["error"]
    result = box["result"]
    if not isinstance(result, StepResult):
        raise TerminalError(f"processor returned {type(result).__name__}, not StepResult")
    return result


def _stop(worker: threading.Thread, cancel: Callable[[], bool], grace_s: float) -> None:
    deadline = time.monotonic() + grace_s
    while cancel():
        if time.monotonic() >= deadline:
            log.warning("a timed-out step's warehouse work is still running %.1fs after it was cancelled", grace_s)
            return
        worker.join(_RECANCEL_EVERY_S)


def attempt_record(
    stage: dict[str, Any], status: AttemptStatus, error: str | None, now: datetime, result: StepResult | None = None
) -> dict[str, Any]:
    """One entry of a stage's `attempts` history (one row of step_executions)."""
    record: dict[str, Any] = {
        "attempt": int(stage.get("attempt", 0)),
        "status": str(status),
        "started_at": stage.get("attempt_started_at"),
        "ended_at": iso(now),
        "error": capped(error),
    }
    if result is not None:
        record.update(rows_in=result.rows_in, rows_out=result.rows_out, bytes_processed=result.bytes_processed)
    return record


def capped(error: str | None) -> str | None:
    """`error` cut to MAX_ERROR_CHARS, saying so."""
    if error is None or len(error) <= MAX_ERROR_CHARS:
        return error
    return error[: MAX_ERROR_CHARS - 20] + " ... (error cut)"


def give_up_message(stage: dict[str, Any], step: StepSpec) -> str:
    last = stage.get("last_error") or "no error recorded"
    return f"gave up after {step.retries.max_attempts} attempts; last error: {last}"
