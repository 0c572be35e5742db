"""`debug.job`: a stand-in for a long external job (a BigQuery query job), for drills, benchmarks and tests.

The "job service" is a document per job id in the state store (`debug_jobs/{job_id}`), so every function process of
a deployment or the emulator stack sees the same job, and a second submit of an id finds the first (like BigQuery's
409 for a duplicate job id). The job succeeds `duration_s` after it was submitted, or fails then with `fail: true`.

config:
  duration_s: int   how long the job runs (default 5)
  rows: int         rows the job reports written
  fail: bool        the job ends in an error instead
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from shared.clock import utc_now
from shared.errors import TerminalError
from shared.pipelines.spec import StepIssue, StepSpec
from shared.pipelines.templating import ValidationScope
from shared.processors.base import StepContext, StepResult
from shared.processors.contract import ProcessorSpec, settings_doc
from shared.processors.debug_noop import plain_config_issues
from shared.processors.jobs import JobState, stage_job_id

_CONFIG_TYPES: dict[str, type] = {"duration_s": int, "rows": int, "fail": bool}


def job_path(job_id: str) -> str:
    return f"debug_jobs/{job_id}"


class DebugJob:
    def run(self, step: StepSpec, ctx: StepContext) -> StepResult:
        """The job waited for in place (only where a step cannot be a job, e.g. a synchronous caller)."""
        job_id = stage_job_id(ctx.run_id, ctx.stage_id, ctx.attempt)
        self.submit(step, ctx, job_id)
        while True:
            state = self.poll(step, ctx, job_id)
            if state.done:
                if state.error is not None:
                    raise state.error
                return state.result or StepResult()
            time.sleep(0.2)

    def submit(self, step: StepSpec, ctx: StepContext, job_id: str) -> None:
        state = ctx.state
        state.increment(f"{job_path(job_id)}_submits", "calls")  # every submit call, for drills: 1 job, n calls
        state.create(
            job_path(job_id),
            {"job_id": job_id, "run_id": ctx.run_id, "submitted_at": utc_now().isoformat(), "cancelled": False},
        )

    def poll(self, step: StepSpec, ctx: StepContext, job_id: str) -> JobState:
        job: dict[str, Any] | None = ctx.state.get(job_path(job_id))
        if job is None:
            return JobState(done=False, missing=True)
        if job.get("cancelled"):
            return JobState(done=True, error=TerminalError(f"job {job_id} was cancelled"))
        duration = int(step.config.get("duration_s", 5))
        elapsed = (utc_now() - datetime.fromisoformat(str(job["submitted_at"]))).total_seconds()
        if elapsed < duration:
            return JobState(done=False, progress=f"RUNNING {elapsed:.0f}/{duration} s")
        if step.config.get("fail"):
            return JobState(done=True, error=TerminalError(f"job {job_id} failed (fail: true)"))
        rows = int(step.config.get("rows", 0))
        return JobState(done=True, result=StepResult(rows_out=rows, details={"job_id": job_id}))

    def cancel(self, step: StepSpec, ctx: StepContext, job_id: str) -> None:
        state = ctx.state
        job = state.get(job_path(job_id))
        if job is not None:
            state.set(job_path(job_id), {**job, "cancelled": True})


def validate_step(step: StepSpec, scope: ValidationScope) -> list[StepIssue]:
    return plain_config_issues(step, _CONFIG_TYPES)


SPEC = ProcessorSpec(
    ps_type="debug.job",
    summary="a stand-in for a long external job (a BigQuery query job), for drills, benchmarks and tests.",
    processor=DebugJob(),
    validate=validate_step,
    settings_doc=settings_doc(__doc__),
)
