"""One attempt of a stage: running the processor under its timeout, and the record kept of each attempt."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.errors import TerminalError
from shared.pipelines.spec import StepSpec
from shared.processors.base import StepResult
from shared.runs.machine import iso


class StageTimeout(Exception):
    pass


def call_with_timeout(fn: Callable[[], Any], timeout_s: float) -> StepResult:
    """Run the processor on its own thread so a hung step cannot hold the worker past its timeout."""
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
        raise StageTimeout()
    if "error" in box:
        raise box["error"]
    result = box["result"]
    if not isinstance(result, StepResult):
        raise TerminalError(f"processor returned {type(result).__name__}, not StepResult")
    return result


def attempt_record(
    stage: dict[str, Any], status: str, error: str | None, now: datetime, result: StepResult | None = None
) -> dict[str, Any]:
    """One entry of a stage's `attempts` history (one row of step_executions)."""
    record: dict[str, Any] = {
        "attempt": int(stage.get("attempt", 0)),
        "status": status,
        "started_at": stage.get("attempt_started_at"),
        "ended_at": iso(now),
        "error": error,
    }
    if result is not None:
        record.update(rows_in=result.rows_in, rows_out=result.rows_out, bytes_processed=result.bytes_processed)
    return record


def give_up_message(stage: dict[str, Any], step: StepSpec) -> str:
    last = stage.get("last_error") or "no error recorded"
    return f"gave up after {step.retries.max_attempts} attempts; last error: {last}"
