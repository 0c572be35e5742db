"""Run and stage statuses and the only transitions allowed between them."""

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


TERMINAL: Final = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT", "SKIPPED"})

RUN_TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    "QUEUED": frozenset({"RUNNING", "FAILED", "CANCELLED", "TIMED_OUT"}),
    "RUNNING": frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"}),
}

STAGE_TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    # QUEUED -> FAILED: dead-lettered or the run's own failure before the stage could start.
    "QUEUED": frozenset({"RUNNING", "SKIPPED", "FAILED", "CANCELLED", "TIMED_OUT"}),
    # RUNNING -> QUEUED: a transient failure with attempts left.
    # RUNNING -> RUNNING: a new attempt takes over one whose worker was lost.
    "RUNNING": frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED", "QUEUED", "RUNNING"}),
}


def is_terminal(status: str) -> bool:
    return status in TERMINAL
