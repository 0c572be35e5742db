"""The run engine: start a run, execute one stage, advance the DAG, finish the run. Every entry is idempotent.

Pub/Sub delivers at least once, so each entry point re-derives what to do from state:
- a stage attempt starts with a versioned compare-and-set QUEUED -> RUNNING(attempt n): one winner per attempt.
  A create()-only claim `claims/{run}:{stage}:{attempt}` turns a concurrent duplicate away early; a claim whose
  holder died before starting the attempt is taken over after CLAIM_GRACE_S (the compare-and-set still decides);
- a stage that ends touches only its direct dependants (shared/runs/dag.py): O(1) state work per transition, and the
  delivery that completes a dependant's parents dispatches it, so a join fires once however many parents end together;
- a finished run is finalised alert first, history last (shared/runs/finalize.py): a crash or a warehouse outage
  there never loses the alert, and the watchdog writes history that could not be written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from shared import logs
from shared.clock import iso, parse_iso, utc_now
from shared.contracts.messages import EventType, StageTask
from shared.contracts.state_paths import claim_path, run_path, stage_path
from shared.contracts.states import AttemptStatus, StageStatus, is_terminal
from shared.error_text import without_local_paths
from shared.errors import TerminalError, TransientError
from shared.observability import stage_span
from shared.pipelines.parameters import typed_values
from shared.pipelines.spec import StepSpec
from shared.ports.state import EXPIRE_AT, expires_in
from shared.ports.warehouse import Warehouse, WarehouseSession
from shared.processors.base import Processor, StepContext, StepResult
from shared.processors.jobs import IN_INVOCATION_MAX_MINUTES, JobProcessor, stage_job_id
from shared.processors.registry import get_processor, runs_as_job
from shared.runs import stage_jobs, stage_slots
from shared.runs.attempts import StageTimeout, attempt_record, call_with_timeout, capped, give_up_message
from shared.runs.dag import advance
from shared.runs.events import publish_status_event
from shared.runs.finalize import finalize_if_needed
from shared.runs.machine import TransitionRequest, transition
from shared.runs.plan import run_plan
from shared.runs.records import StageRecord
from shared.runtime.context import Context

log = logs.get_logger(__name__)
LEASE_GRACE_S = 60.0
"""A running attempt's lease outlives its timeout by this much before another delivery may take the stage over."""
CLAIM_RETENTION_DAYS = 7.0
"""Claims matter only while their attempt can still be redelivered (Pub/Sub keeps messages 7 days)."""
CLAIM_GRACE_S = 0.5
"""A claim older than this whose stage never started belongs to a worker that died between claim and start."""


# ---------------------------------------------------------------------------------------------------- run a stage
def execute_stage(ctx: Context, task: StageTask) -> None:
    state = ctx.state
    run = state.get(run_path(task.run_id))
    if run is None or run.get("tenant_id") != task.tenant_id:
        raise TerminalError(f"stage task for unknown run {task.run_id}")
    spath = stage_path(task.run_id, task.stage_id)
    if is_terminal(str(run["status"])):
        queued = frozenset({StageStatus.QUEUED})
        transition(state, spath, TransitionRequest("stage", StageStatus.CANCELLED, only_from=queued))
        stage_slots.release_and_pump(ctx, run, task.stage_id)  # its run ended: the tenant's next stage may go
        finalize_if_needed(ctx, run)
        return
    plan = run_plan(run, state)
    step = plan.steps.get(task.stage_id)
    if step is None:
        raise TerminalError(f"run {task.run_id} has no stage {task.stage_id}")
    current = state.get_versioned(spath)
    if current is None:
        raise TerminalError(f"run {task.run_id} has no stage {task.stage_id}")
    stage = current.data
    record = StageRecord.from_doc(stage)
    now = utc_now()
    if record.is_terminal:
        advance(ctx, run, actor=task.stage_id, finished=task.stage_id)
        return
    if record.status == StageStatus.RUNNING and record.job_id:  # a job's re-check (or a task finding its chain)
        attempt = int(stage["attempt"])
        with logs.log_context(stage_id=task.stage_id, attempt=attempt):
            _conclude(
                ctx,
                run,
                step,
                stage,
                attempt,
                list(stage.get("attempts") or []),
                _job_round(ctx, run, step, stage, task),
            )
        return
    if record.lease_active(now):
        left = record.lease_left(now)
        raise TransientError(f"attempt {record.attempt} is running (lease {left:.0f}s left)", retry_after_seconds=1.0)
    if record.in_backoff(now):
        left = record.backoff_left(now)
        raise TransientError(f"retry backoff: {left:.2f}s left", retry_after_seconds=left)
    history = list(stage.get("attempts") or [])
    last_error = stage.get("last_error")
    if record.status == StageStatus.RUNNING:  # the worker holding the lease was lost
        last_error = f"worker lost during attempt {record.attempt} (lease expired)"
        history.append(attempt_record(stage, AttemptStatus.LOST, last_error, now))
    attempt = int(stage.get("attempt", 0)) + 1
    if attempt > step.retries.max_attempts:
        _finish_stage(
            ctx,
            run,
            spath,
            attempt - 1,
            StageStatus.FAILED,
            history,
            error=give_up_message({**stage, "last_error": last_error}, step),
        )
        advance(ctx, run, actor=task.stage_id, finished=task.stage_id)
        return
    _claim(ctx, task, attempt, now)
    lease = now + timedelta(minutes=timeout_minutes(step), seconds=LEASE_GRACE_S)
    # A job's id is recorded before it is submitted, so no redelivery can start a second one (shared/runs/stage_jobs)
    job = {"job_id": stage_job_id(task.run_id, task.stage_id, attempt), "poll_seq": 0, "polled_at": iso(now)}
    started = transition(
        state,
        spath,
        TransitionRequest(
            "stage",
            StageStatus.RUNNING,
            attempt,
            fields={
                "attempt": attempt,
                "lease_until": iso(lease),
                "attempt_started_at": iso(now),
                "attempts": history,
                "last_error": last_error,
                **(job if runs_as_job(step.ps_type) else {"job_id": None}),
            },
        ),
    )
    if not started.applied:
        raise TransientError(f"stage moved while claiming: {started.reason}", 1.0)
    with logs.log_context(stage_id=task.stage_id, attempt=attempt):
        _run_attempt(ctx, run, step, started.doc, attempt, history)


def timeout_minutes(step: StepSpec) -> float:
    """A job's own timeout; a step run inside one invocation at most IN_INVOCATION_MAX_MINUTES (validation refuses a
    longer one it sets; the default 30 becomes that)."""
    return step.timeout_minutes if runs_as_job(step.ps_type) else min(step.timeout_minutes, IN_INVOCATION_MAX_MINUTES)


def _claim(ctx: Context, task: StageTask, attempt: int, now: Any) -> None:
    """Turn away a concurrent duplicate early; take over a claim whose holder died before starting the attempt."""
    path = claim_path(task.run_id, task.stage_id, attempt)
    if ctx.state.create(
        path, {"at": iso(now), "run_id": task.run_id, EXPIRE_AT: expires_in(CLAIM_RETENTION_DAYS, now)}
    ):
        return
    claim = ctx.state.get(path) or {}
    age = (now - parse_iso(claim["at"])).total_seconds() if claim.get("at") else CLAIM_GRACE_S
    if age < CLAIM_GRACE_S:
        raise TransientError(f"attempt {attempt} of {task.stage_id} is claimed by another delivery", 1.0)
    log.warning("claim of attempt %d is %.1fs old and its attempt never started: taking it over", attempt, age)


def _step_context(
    ctx: Context, run: dict[str, Any], step: StepSpec, attempt: int, timeout_s: float, warehouse: Warehouse
) -> StepContext:
    spec = run_plan(run, ctx.state).spec
    return StepContext(
        tenant_id=run["tenant_id"],
        pipeline_id=run["pipeline_id"],
        run_id=run["run_id"],
        stage_id=step.step_id,
        attempt=attempt,
        run_date=date.fromisoformat(str(run["run_date"])),
        parameters=typed_values(spec.parameters, run.get("parameters")),
        variables=dict(spec.variables),
        warehouse=warehouse,
        deadline_monotonic=time.monotonic() + timeout_s,
        runtime=ctx,
    )


def _run_attempt(
    ctx: Context,
    run: dict[str, Any],
    step: StepSpec,
    stage: dict[str, Any],
    attempt: int,
    history: list[dict[str, Any]],
) -> None:
    timeout_s = timeout_minutes(step) * 60

    def produce() -> StepResult | None:  # inside _conclude's try: opening the warehouse can fail like the step
        processor, session, step_ctx = _prepared(ctx, run, step, attempt, timeout_s)
        with stage_span(step.step_id, step.ps_type, attempt):
            if isinstance(processor, JobProcessor):
                return stage_jobs.first_round(ctx, run, step, stage, processor, step_ctx)
            return call_with_timeout(lambda: processor.run(step, step_ctx), timeout_s, session.cancel_running)

    _conclude(ctx, run, step, stage, attempt, history, produce)


def _job_round(
    ctx: Context, run: dict[str, Any], step: StepSpec, stage: dict[str, Any], task: StageTask
) -> Callable[[], StepResult | None]:
    def produce() -> StepResult | None:
        attempt = int(stage["attempt"])
        processor, _, step_ctx = _prepared(ctx, run, step, attempt, step.timeout_minutes * 60)
        if not isinstance(processor, JobProcessor):
            raise TerminalError(f"{step.ps_type} steps do not run as jobs")
        with stage_span(step.step_id, step.ps_type, attempt):
            return stage_jobs.later_round(ctx, run, step, stage, task, processor, step_ctx)

    return produce


def _prepared(
    ctx: Context, run: dict[str, Any], step: StepSpec, attempt: int, timeout_s: float
) -> tuple[Processor, WarehouseSession, StepContext]:
    """The step's processor, a session of the tenant's warehouse (on timeout this step's work alone is stopped) and
    the StepContext holding it."""
    session = ctx.warehouse_for(run["tenant_id"]).session()
    return get_processor(step.ps_type), session, _step_context(ctx, run, step, attempt, timeout_s, session)


def _conclude(
    ctx: Context,
    run: dict[str, Any],
    step: StepSpec,
    stage: dict[str, Any],
    attempt: int,
    history: list[dict[str, Any]],
    produce: Callable[[], StepResult | None],
) -> None:
    """Record what `produce` (the step, or a round of its job) came to; None: a job still running, nothing yet."""
    spath = stage_path(run["run_id"], step.step_id)
    try:
        result = produce()
    except StageTimeout:
        error = f"timed out after {timeout_minutes(step):g} min"
        record = attempt_record(stage, AttemptStatus.TIMED_OUT, error, utc_now())
        _finish_stage(ctx, run, spath, attempt, StageStatus.TIMED_OUT, [*history, record], error=error)
    except TerminalError as exc:
        error = without_local_paths(str(exc))  # the tenant reads it: no host paths (shared.error_text)
        record = attempt_record(stage, AttemptStatus.FAILED, error, utc_now())
        _finish_stage(ctx, run, spath, attempt, StageStatus.FAILED, [*history, record], error=error)
    except Exception as exc:  # transient by default: a processor bug is retried, then FAILED with its error
        error = without_local_paths(f"{type(exc).__name__}: {exc}")
        history = [*history, attempt_record(stage, AttemptStatus.FAILED, error, utc_now())]
        if attempt >= step.retries.max_attempts:
            _finish_stage(
                ctx,
                run,
                spath,
                attempt,
                StageStatus.FAILED,
                history,
                error=f"gave up after {attempt} attempts; last error: {error}",
            )
        else:
            _requeue(ctx, run, spath, step, stage, attempt, history, error)
            raise TransientError(
                f"attempt {attempt} failed: {error}", retry_after_seconds=step.retries.delay_before(attempt + 1)
            ) from exc
    else:
        if result is None:
            return
        now = utc_now()
        moved = transition(
            ctx.state,
            spath,
            TransitionRequest(
                "stage",
                StageStatus.SUCCEEDED,
                attempt,
                fields={
                    "attempts": [*history, attempt_record(stage, AttemptStatus.SUCCEEDED, None, now, result)],
                    "rows_in": result.rows_in,
                    "rows_out": result.rows_out,
                    "bytes_processed": result.bytes_processed,
                    "details": result.details,
                    "error": None,
                },
            ),
        )
        if not moved.applied:
            log.warning("stage result discarded: %s", moved.reason)
    advance(ctx, run, actor=step.step_id, finished=step.step_id)


def _requeue(
    ctx: Context,
    run: dict[str, Any],
    spath: str,
    step: StepSpec,
    stage: dict[str, Any],
    attempt: int,
    history: list[dict[str, Any]],
    error: str,
) -> None:
    not_before = utc_now() + timedelta(seconds=step.retries.delay_before(attempt + 1))
    moved = transition(
        ctx.state,
        spath,
        TransitionRequest(
            "stage",
            StageStatus.QUEUED,
            attempt,
            fields={
                "attempts": history,
                "last_error": capped(error),
                "not_before": iso(not_before),
                "lease_until": None,
            },
        ),
    )
    if moved.applied:
        log.warning("attempt %d failed, retrying: %s", attempt, error)
        publish_status_event(
            ctx.bus, run, "stage.retrying", StageStatus.QUEUED, {**stage, "attempt": attempt}, error=error
        )


def _finish_stage(
    ctx: Context,
    run: dict[str, Any],
    spath: str,
    attempt: int,
    status: StageStatus,
    history: list[dict[str, Any]],
    error: str,
) -> None:
    moved = transition(
        ctx.state,
        spath,
        TransitionRequest(
            "stage",
            status,
            attempt if attempt else None,
            fields={
                "attempts": history,
                "error": capped(error),
                "lease_until": None,
            },
        ),
    )
    if moved.applied:
        log.error("stage %s: %s", status, error)
        event: EventType = "stage.timed_out" if status == StageStatus.TIMED_OUT else "stage.failed"
        publish_status_event(ctx.bus, run, event, status, moved.doc, error=error)
