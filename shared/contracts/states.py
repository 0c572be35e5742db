"""Every status word the pipeline stores or sends, and the only transitions allowed between run and stage statuses.

The one place these words are spelt (tests/unit/test_status_literals.py fails on a bare one anywhere else in shared/
or functions/). They are StrEnums, so a member equals the string stored in a document or sent in a message, and
documents written before the enums existed load unchanged. It sits in shared/contracts, below every package that
reads a run or a stage (processors, notify, metadata tables, adapters); the state machine that moves runs stays
private to shared/runs.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class RunStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"


class StageStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"
    SKIPPED = "SKIPPED"


class AttemptStatus(StrEnum):
    """How one attempt of a stage ended (an entry of the stage's `attempts` history, a row of step_executions)."""

    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    LOST = "LOST"
    """Its worker vanished (the lease expired) and a later attempt took the stage over."""


class StatementState(StrEnum):
    """A warehouse statement running as a job (shared/ports/statement_jobs.py; BigQuery's job states), not a stage."""

    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    MISSING = "MISSING"
    """No job of that id: never started, or started by a process that is gone (the embedded warehouse)."""


NO_DOCUMENT: Final = "MISSING"
"""The state machine's answer for a run or stage that does not exist (TransitionResult.status): no document holds it."""

TERMINAL: Final[frozenset[StageStatus]] = frozenset(
    {StageStatus.SUCCEEDED, StageStatus.FAILED, StageStatus.CANCELLED, StageStatus.TIMED_OUT, StageStatus.SKIPPED}
)
"""A run's terminal statuses are these less SKIPPED; StrEnum members hash like their strings, so `"FAILED" in
TERMINAL` and `RunStatus.FAILED in TERMINAL` both hold."""

ACTIVE: Final[tuple[StageStatus, ...]] = (StageStatus.QUEUED, StageStatus.RUNNING)
"""Not ended yet: a run or stage in one of these still has work (or a wait) ahead of it."""

FAILURES: Final[frozenset[StageStatus]] = frozenset({StageStatus.FAILED, StageStatus.TIMED_OUT})
"""A stage that ended without its result: it fails its run and its dependants' `all_success` trigger."""

RERUNNABLE: Final[tuple[RunStatus, ...]] = (RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELLED)
"""A run that ended without finishing its work: it may be re-run from its failed stages."""

RUN_TRANSITIONS: Final[dict[RunStatus, frozenset[RunStatus]]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT}),
    RunStatus.RUNNING: frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT}),
}

STAGE_TRANSITIONS: Final[dict[StageStatus, frozenset[StageStatus]]] = {
    # QUEUED -> FAILED: dead-lettered or the run's own failure before the stage could start.
    StageStatus.QUEUED: frozenset(
        {StageStatus.RUNNING, StageStatus.SKIPPED, StageStatus.FAILED, StageStatus.CANCELLED, StageStatus.TIMED_OUT}
    ),
    # RUNNING -> QUEUED: a transient failure with attempts left.
    # RUNNING -> RUNNING: a new attempt takes over one whose worker was lost.
    StageStatus.RUNNING: frozenset(
        {
            StageStatus.SUCCEEDED,
            StageStatus.FAILED,
            StageStatus.TIMED_OUT,
            StageStatus.CANCELLED,
            StageStatus.QUEUED,
            StageStatus.RUNNING,
        }
    ),
}


def is_terminal(status: object) -> bool:
    return status in TERMINAL
