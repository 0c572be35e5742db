"""The contract of a step that runs as a job elsewhere (a BigQuery query job): submit once, poll, cancel.

A Cloud Function lives at most 540 s (event) or 3,600 s (HTTP); a BigQuery step may run for hours. A processor that
implements `JobProcessor` is never waited on inside one invocation: the engine records the attempt's deterministic
job id with RUNNING, calls `submit` (which must be idempotent for that id: a redelivery that finds the job attaches
to it, BigQuery answers a second insert of a job id with 409), then `poll`s it in short invocations
(shared/runs/stage_jobs.py) and `cancel`s it when the step's timeout passes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from shared.pipelines.spec import StepSpec
from shared.processors.base import StepContext, StepResult

_NOT_IN_JOB_ID = re.compile(r"[^A-Za-z0-9_-]")

IN_INVOCATION_MAX_MINUTES = 8.0
"""The longest a step that is not a job may run: it runs inside one stage_worker invocation, which Cloud Functions
stops at 540 s (terraform/modules/platform: event functions), less a minute to claim, record and dispatch. A longer
`timeout_minutes` is refused at validation for such a step; a step that sets none gets this instead of the default."""


def stage_job_id(run_id: str, stage_id: str, attempt: int) -> str:
    """`cdp_{run}_{stage}_{attempt}`: one job per attempt, the same id on every delivery (BigQuery job ids allow
    letters, digits, `_` and `-`, up to 1,024 characters)."""
    return _NOT_IN_JOB_ID.sub("_", f"cdp_{run_id}_{stage_id}_{attempt}")[:1024]


@dataclass(frozen=True)
class JobState:
    """What a poll found. `done` with `error` None is a success with `result`."""

    done: bool
    result: StepResult | None = None
    error: Exception | None = None
    """TerminalError fails the attempt at once; anything else is retried like a step's exception."""
    missing: bool = False
    """No such job: the attempt crashed between recording the id and submitting; the engine submits it now."""
    progress: str | None = None
    """Shown on the stage while it runs (e.g. "RUNNING, 12.3 GB processed")."""


@runtime_checkable
class JobProcessor(Protocol):
    def run(self, step: StepSpec, ctx: StepContext) -> StepResult: ...

    def submit(self, step: StepSpec, ctx: StepContext, job_id: str) -> None:
        """Start the job, or do nothing if a job with this id exists."""
        ...

    def poll(self, step: StepSpec, ctx: StepContext, job_id: str) -> JobState: ...

    def cancel(self, step: StepSpec, ctx: StepContext, job_id: str) -> None:
        """Ask the job to stop (best effort: a job that already ended is left alone)."""
        ...
