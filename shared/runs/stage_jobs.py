"""Stages whose step runs as a job (shared/processors/jobs.py): submitted once, then polled in short rounds.

No invocation waits for a job longer than POLL_WINDOW_S, whatever the job's length:
- the attempt's RUNNING transition records the deterministic `job_id` and claims poll round 0 (`poll_seq`,
  `polled_at`); the job is submitted after that, so a crash in between is found by the next round (`missing`) and
  submitted then under the same id: a redelivery never starts a second job;
- a round polls until the job is done or the window ends; still running, it records the job's progress and that
  round n ended (`round_ended`) on the stage and publishes one re-check stage task for round n+1, then acks;
- the job's completion event (BigQuery's audit log, shared/runs/job_events.py) sends that same re-check for round
  n+1 when no round is polling (`idle_round`): it ends a stage whose chain broke, or whose re-check is held up, now.
  Where events are wired (settings.job_events_after_s, GCP), a job still running that long after its attempt
  started gets no further back-to-back round: it waits for its event, or for the watchdog's tick, which takes a
  stale chain over (one short round per tick), so a job of hours costs minutes of instance time, not hours;
- a re-check claims its round with a compare-and-set `poll_seq` n -> n+1: a duplicate of it (Pub/Sub delivers at
  least once) loses that write and does nothing, so the chain of re-checks never forks. A chain broken by a crash is
  taken over by any task for the stage (a redelivery, the watchdog's re-dispatch) once `polled_at` is stale;
- past the step's timeout the job is cancelled and the stage TIMED_OUT, like a synchronous step.
The engine records the outcome (shared/runs/engine.py `_conclude`): a round returns the step's result when the job
succeeded, raises its error when it failed, and returns None while it runs.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from shared import logs
from shared.clock import iso, parse_iso, utc_now
from shared.contracts.messages import StageTask
from shared.contracts.state_paths import stage_path
from shared.contracts.states import StageStatus
from shared.pipelines.spec import StepSpec
from shared.ports.state import set_fields_if
from shared.processors.base import StepContext, StepResult
from shared.processors.jobs import JobProcessor, JobState
from shared.runs.attempts import StageTimeout
from shared.runs.events import publish_stage_tasks
from shared.runs.records import StageRecord
from shared.runtime.context import Context

log = logs.get_logger(__name__)
POLL_WINDOW_S = 5.0
"""Longest a round waits on a job within one invocation (P9: no invocation longer than 10 s)."""
_POLL_EVERY_S = (0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
"""Pauses between polls within a round: a warehouse query of milliseconds is seen done at once, a long job costs a
jobs.get a second."""
SEEN_LATE_ON_EVENTS_S = 360.0
"""How late a job waiting for its completion event may be seen done and still count: the event comes at once, a lost
one is made up for by the watchdog's next tick (5 minutes on GCP) and its round."""
STALE_AFTER_S = POLL_WINDOW_S + 30.0
"""A round claimed this long ago whose re-check never came belongs to a crashed worker: its chain is taken over."""


ROUND_ENDED = "round_ended"
"""The stage field naming the last round that ended with its job still running; equal to `poll_seq`: none polls now."""


def idle_round(stage: dict[str, Any], now: datetime) -> int | None:
    """The round a re-check sent now would claim (`poll_seq` + 1), or None while a round polls the job: that round sees
    the job end by itself, and a second round beside it would finish the job twice. A round that never ended (its
    worker died) is idle once its chain is stale, as for the watchdog."""
    record = StageRecord.from_doc(stage)
    if record.status != StageStatus.RUNNING or not record.job_id:
        return None
    seq = record.poll_seq or 0
    return seq + 1 if record.round_ended == seq or record.poll_stale(now, STALE_AFTER_S) else None


def first_round(
    ctx: Context, run: dict[str, Any], step: StepSpec, stage: dict[str, Any], job: JobProcessor, step_ctx: StepContext
) -> StepResult | None:
    """Round 0, right after the attempt's RUNNING transition recorded the job id: submit, then poll."""
    job.submit(step, step_ctx, str(stage["job_id"]))
    return _round(ctx, run, step, stage, job, step_ctx, 0)


def later_round(
    ctx: Context,
    run: dict[str, Any],
    step: StepSpec,
    stage: dict[str, Any],
    task: StageTask,
    job: JobProcessor,
    step_ctx: StepContext,
) -> StepResult | None:
    """A re-check (or a task that finds the chain stale): claim the next round, then poll. None when not ours."""
    seq = int(stage.get("poll_seq") or 0)
    polled_at = stage.get("polled_at")
    stale = not polled_at or (utc_now() - parse_iso(str(polled_at))).total_seconds() > STALE_AFTER_S
    if task.poll_seq != seq + 1 and not stale:
        log.info("re-check for round %s dropped: the stage is at round %d", task.poll_seq, seq)
        return None
    attempt = stage.get("attempt")

    def same_round(doc: dict[str, Any]) -> bool:
        return (
            doc.get("status") == StageStatus.RUNNING
            and doc.get("attempt") == attempt
            and (doc.get("poll_seq") or 0) == seq
        )

    if not set_fields_if(ctx.state, _path(stage), {"poll_seq": seq + 1, "polled_at": iso(utc_now())}, same_round):
        return None  # a duplicate claimed this round first
    if stale and task.poll_seq != seq + 1:
        log.warning("job %s: poll chain stale since %s, taken over", stage["job_id"], polled_at)
    return _round(ctx, run, step, stage, job, step_ctx, seq + 1)


def _round(
    ctx: Context,
    run: dict[str, Any],
    step: StepSpec,
    stage: dict[str, Any],
    job: JobProcessor,
    step_ctx: StepContext,
    seq: int,
) -> StepResult | None:
    job_id = str(stage["job_id"])
    deadline = parse_iso(str(stage["attempt_started_at"])) + timedelta(minutes=step.timeout_minutes)
    state = _poll(step, step_ctx, job, job_id, deadline)
    if state.missing:  # the attempt died between recording the id and submitting: submit it now, same id
        log.warning("job %s was never submitted: submitting it", job_id)
        job.submit(step, step_ctx, job_id)
        state = _poll(step, step_ctx, job, job_id, deadline)
    started = parse_iso(str(stage["attempt_started_at"]))
    on_events = _waits_for_events(ctx, started)
    # Done within its time (seen at most a round late: the chain looks every POLL_WINDOW_S; waiting for its event, at
    # most a watchdog tick late): its outcome counts. Seen done later than that (an emulator that runs the query
    # inside jobs.insert), or still running past the deadline: TIMED_OUT, as a step run in place would be.
    late = utc_now() >= deadline + timedelta(seconds=SEEN_LATE_ON_EVENTS_S if on_events else POLL_WINDOW_S)
    if state.done and not late:
        if state.error is not None:
            raise state.error
        return state.result or StepResult()
    if late or utc_now() >= deadline:
        if not state.done:
            job.cancel(step, step_ctx, job_id)
        raise StageTimeout()
    set_fields_if(
        ctx.state,
        _path(stage),
        {"job_progress": state.progress, ROUND_ENDED: seq},
        lambda d: d.get("status") == StageStatus.RUNNING and (d.get("poll_seq") or 0) == seq,
    )
    if on_events:  # no instance polls a long job: its completion event (or the watchdog's tick) sends round n+1
        log.info("job %s still running after round %d: waiting for its completion event", job_id, seq)
        return None
    publish_stage_tasks(ctx.bus, run, [step.step_id], poll_seq=seq + 1)
    return None


def _waits_for_events(ctx: Context, started: datetime) -> bool:
    after = ctx.settings.job_events_after_s
    return after is not None and (utc_now() - started).total_seconds() >= after


def _poll(step: StepSpec, step_ctx: StepContext, job: JobProcessor, job_id: str, deadline: datetime) -> JobState:
    ends = time.monotonic() + POLL_WINDOW_S
    pause = iter(_POLL_EVERY_S)
    while True:
        state = job.poll(step, step_ctx, job_id)
        if state.done or state.missing or time.monotonic() >= ends or utc_now() >= deadline:
            return state
        time.sleep(min(next(pause, _POLL_EVERY_S[-1]), max(0.0, ends - time.monotonic())))


def _path(stage: dict[str, Any]) -> str:
    return stage_path(str(stage["run_id"]), str(stage["stage_id"]))
