"""The run engine: start a run, execute one stage, advance the DAG, finish the run. Every entry is idempotent.

Pub/Sub delivers at least once, so each entry point re-derives what to do from state:
- a stage attempt starts with a versioned compare-and-set QUEUED -> RUNNING(attempt n): one winner per attempt.
  A create()-only claim `claims/{run}:{stage}:{attempt}` turns a concurrent duplicate away early; a claim whose
  holder died before starting the attempt is taken over after CLAIM_GRACE_S (the compare-and-set still decides);
- a ready stage is dispatched by whoever flags it first (`dispatched_by`); that same actor re-publishes on redelivery,
  so a crash between flagging and publishing loses nothing, and a join fires once however many parents finish together;
- a stage finishing only looks at its own descendants, and the run ends when no stage is QUEUED or RUNNING;
- a finished run is finalised (metadata, event, quota slot) under a short lease until `finalized` is set, so a crash
  there is redone by the next delivery (or the watchdog) and two deliveries never finalise at once.
"""

from __future__ import annotations

import secrets
import time
from datetime import date, datetime, timedelta
from typing import Any

from shared import logs
from shared.contracts.messages import EventType, RunRequest, StageTask
from shared.error_text import without_local_paths
from shared.errors import ClientError, TerminalError, TransientError
from shared.observability import stage_span
from shared.pipelines.loader import PipelineValidationError, find_pipeline, snapshot
from shared.pipelines.parameters import resolve_run_parameters, typed_values
from shared.pipelines.spec import PipelineSpec, StepSpec
from shared.ports.state import Filter
from shared.processors.base import StepContext
from shared.processors.registry import get_processor
from shared.runs import metadata
from shared.runs.attempts import StageTimeout, attempt_record, call_with_timeout, give_up_message
from shared.runs.events import publish_stage_tasks, publish_status_event
from shared.runs.machine import (
    TransitionRequest,
    claim_path,
    iso,
    parse_iso,
    run_path,
    set_fields_if,
    stage_path,
    stages_collection,
    transition,
    transition_run,
    utc_now,
)
from shared.runs.plan import derive_run_status, run_plan, run_spec, should_run
from shared.runs.states import is_terminal
from shared.runs.store import carried_stages, create_run, list_stages, new_stage_doc
from shared.runtime.context import Context

log = logs.get_logger("cloudact.engine")
LEASE_GRACE_S = 60.0
"""A running attempt's lease outlives its timeout by this much before another delivery may take the stage over."""
CLAIM_GRACE_S = 0.5
"""A claim older than this whose stage never started belongs to a worker that died between claim and start."""
FINALIZE_LEASE_S = 30.0
"""Long enough for BigQuery history DML; a finaliser that died is redone after it (or by the watchdog)."""
ACTIVE_STAGE_STATUSES = ["QUEUED", "RUNNING"]
_FEW_STAGES = 16
RUN_EVENT_TYPES: dict[str, EventType] = {
    "SUCCEEDED": "run.succeeded",
    "FAILED": "run.failed",
    "CANCELLED": "run.cancelled",
    "TIMED_OUT": "run.timed_out",
}


# ---------------------------------------------------------------------------------------------------- start a run
def start_run(ctx: Context, req: RunRequest) -> None:
    state = ctx.state
    run = state.get(run_path(req.run_id))
    if run is None:  # producers record the run before publishing; rebuild it if that write was lost
        run = create_run(state, req.tenant_id, req.pipeline_id, req.parameters, req.trigger, run_id=req.run_id).doc
    if is_terminal(str(run["status"])):
        log.info("run already %s; request ignored", run["status"])
        finalize_if_needed(ctx, run)
        return
    if run["status"] == "QUEUED":
        try:
            spec = find_pipeline(ctx.settings.config_dir, req.tenant_id, req.pipeline_id)
            params = resolve_run_parameters(spec, dict(run.get("parameters") or {}))
        except (PipelineValidationError, TerminalError, ClientError) as exc:
            _fail_before_start(ctx, run, str(exc))
            return
        now = iso(utc_now())
        carried = carried_stages(state, run.get("resume_from_run"), now)
        for step in spec.steps:
            state.create(
                stage_path(req.run_id, step.step_id),
                {**new_stage_doc(run, step, now), **carried.get(step.step_id, {})},
            )
        result = transition_run(
            state,
            req.run_id,
            "RUNNING",
            spec=snapshot(spec),
            parameters=params,
            stage_order=[s.step_id for s in spec.steps],
            deadline_at=iso(utc_now() + timedelta(minutes=spec.timeout_minutes)),
        )
        run = result.doc or run
        if is_terminal(result.status):  # cancelled (or failed) while we were starting it
            finalize_if_needed(ctx, run)
            return
    # Published on every delivery of a started run: a crash right after RUNNING must not lose it; the notifier
    # drops repeats by event id.
    publish_status_event(ctx.bus, run, "run.started", "RUNNING")
    advance(ctx, run, actor="run_starter")


def _fail_before_start(ctx: Context, run: dict[str, Any], error: str) -> None:
    log.warning("run cannot start: %s", error)
    result = transition_run(ctx.state, run["run_id"], "FAILED", error=error)
    finalize_if_needed(ctx, result.doc or run)


# ---------------------------------------------------------------------------------------------------- run a stage
def execute_stage(ctx: Context, task: StageTask) -> None:
    state = ctx.state
    run = state.get(run_path(task.run_id))
    if run is None or run.get("tenant_id") != task.tenant_id:
        raise TerminalError(f"stage task for unknown run {task.run_id}")
    spath = stage_path(task.run_id, task.stage_id)
    if is_terminal(str(run["status"])):
        transition(state, spath, TransitionRequest("stage", "CANCELLED", only_from=frozenset({"QUEUED"})))
        finalize_if_needed(ctx, run)
        return
    spec = run_spec(run)
    step = spec.step(task.stage_id)
    current = state.get_versioned(spath)
    if current is None:
        raise TerminalError(f"run {task.run_id} has no stage {task.stage_id}")
    stage = current.data
    now = utc_now()
    if is_terminal(str(stage["status"])):
        advance(ctx, run, actor=task.stage_id, finished=task.stage_id)
        return
    if stage["status"] == "RUNNING" and now < parse_iso(stage["lease_until"]):
        left = (parse_iso(stage["lease_until"]) - now).total_seconds()
        raise TransientError(f"attempt {stage['attempt']} is running (lease {left:.0f}s left)", retry_after_seconds=1.0)
    if stage["status"] == "QUEUED" and stage.get("not_before") and now < parse_iso(stage["not_before"]):
        left = (parse_iso(stage["not_before"]) - now).total_seconds()
        raise TransientError(f"retry backoff: {left:.2f}s left", retry_after_seconds=left)
    history = list(stage.get("attempts") or [])
    last_error = stage.get("last_error")
    if stage["status"] == "RUNNING":  # the worker holding the lease was lost
        last_error = f"worker lost during attempt {stage.get('attempt')} (lease expired)"
        history.append(attempt_record(stage, "LOST", last_error, now))
    attempt = int(stage.get("attempt", 0)) + 1
    if attempt > step.retries.max_attempts:
        _finish_stage(
            ctx,
            run,
            spath,
            attempt - 1,
            "FAILED",
            history,
            error=give_up_message({**stage, "last_error": last_error}, step),
        )
        advance(ctx, run, actor=task.stage_id, finished=task.stage_id)
        return
    _claim(ctx, task, attempt, now)
    lease = now + timedelta(minutes=step.timeout_minutes, seconds=LEASE_GRACE_S)
    started = transition(
        state,
        spath,
        TransitionRequest(
            "stage",
            "RUNNING",
            attempt,
            fields={
                "attempt": attempt,
                "lease_until": iso(lease),
                "attempt_started_at": iso(now),
                "attempts": history,
                "last_error": last_error,
            },
        ),
    )
    if not started.applied:
        raise TransientError(f"stage moved while claiming: {started.reason}", 1.0)
    with logs.log_context(stage_id=task.stage_id, attempt=attempt):
        _run_attempt(ctx, run, spec, step, started.doc, attempt, history)


def _claim(ctx: Context, task: StageTask, attempt: int, now: Any) -> None:
    """Turn away a concurrent duplicate early; take over a claim whose holder died before starting the attempt."""
    path = claim_path(task.run_id, task.stage_id, attempt)
    if ctx.state.create(path, {"at": iso(now), "run_id": task.run_id}):
        return
    claim = ctx.state.get(path) or {}
    age = (now - parse_iso(claim["at"])).total_seconds() if claim.get("at") else CLAIM_GRACE_S
    if age < CLAIM_GRACE_S:
        raise TransientError(f"attempt {attempt} of {task.stage_id} is claimed by another delivery", 1.0)
    log.warning("claim of attempt %d is %.1fs old and its attempt never started: taking it over", attempt, age)


def _run_attempt(
    ctx: Context,
    run: dict[str, Any],
    spec: PipelineSpec,
    step: StepSpec,
    stage: dict[str, Any],
    attempt: int,
    history: list[dict[str, Any]],
) -> None:
    spath = stage_path(run["run_id"], step.step_id)
    timeout_s = step.timeout_minutes * 60
    try:
        # Inside the try: opening the warehouse can fail like the step itself. A session of the tenant's warehouse,
        # so that on timeout this step's work alone is stopped, before the stage is finished.
        warehouse = ctx.warehouse_for(run["tenant_id"]).session()
        step_ctx = StepContext(
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
        )
        with stage_span(step.step_id, step.ps_type, attempt):
            result = call_with_timeout(
                lambda: get_processor(step.ps_type).run(step, step_ctx), timeout_s, warehouse.cancel_running
            )
    except StageTimeout:
        error = f"timed out after {step.timeout_minutes:g} min"
        record = attempt_record(stage, "TIMED_OUT", error, utc_now())
        _finish_stage(ctx, run, spath, attempt, "TIMED_OUT", [*history, record], error=error)
    except TerminalError as exc:
        error = without_local_paths(str(exc))  # the tenant reads it: no host paths (shared.error_text)
        record = attempt_record(stage, "FAILED", error, utc_now())
        _finish_stage(ctx, run, spath, attempt, "FAILED", [*history, record], error=error)
    except Exception as exc:  # transient by default: a processor bug is retried, then FAILED with its error
        error = without_local_paths(f"{type(exc).__name__}: {exc}")
        history = [*history, attempt_record(stage, "FAILED", error, utc_now())]
        if attempt >= step.retries.max_attempts:
            _finish_stage(
                ctx,
                run,
                spath,
                attempt,
                "FAILED",
                history,
                error=f"gave up after {attempt} attempts; last error: {error}",
            )
        else:
            _requeue(ctx, run, spath, step, stage, attempt, history, error)
            raise TransientError(
                f"attempt {attempt} failed: {error}", retry_after_seconds=step.retries.delay_before(attempt + 1)
            ) from exc
    else:
        now = utc_now()
        moved = transition(
            ctx.state,
            spath,
            TransitionRequest(
                "stage",
                "SUCCEEDED",
                attempt,
                fields={
                    "attempts": [*history, attempt_record(stage, "SUCCEEDED", None, now, result)],
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
            "QUEUED",
            attempt,
            fields={
                "attempts": history,
                "last_error": error,
                "not_before": iso(not_before),
                "lease_until": None,
            },
        ),
    )
    if moved.applied:
        log.warning("attempt %d failed, retrying: %s", attempt, error)
        publish_status_event(ctx.bus, run, "stage.retrying", "QUEUED", {**stage, "attempt": attempt}, error=error)


def _finish_stage(
    ctx: Context, run: dict[str, Any], spath: str, attempt: int, status: str, history: list[dict[str, Any]], error: str
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
                "error": error,
                "lease_until": None,
            },
        ),
    )
    if moved.applied:
        log.error("stage %s: %s", status, error)
        event: EventType = "stage.timed_out" if status == "TIMED_OUT" else "stage.failed"
        publish_status_event(ctx.bus, run, event, status, moved.doc, error=error)


# ---------------------------------------------------------------------------------------------------- advance the DAG
def advance(ctx: Context, run: dict[str, Any], actor: str, finished: str | None = None) -> None:
    """Skip what can no longer run, dispatch what is ready, finish the run when no stage is left active.

    With `finished`, only that stage's descendants can have changed, so only they are examined (a 100-way fan-out
    stays linear); without it (run start, maintenance) every stage is.
    """
    plan = run_plan(run)
    run_id = str(run["run_id"])
    if finished is None:
        stages = {str(s["stage_id"]): s for s in list_stages(ctx.state, run_id)}
        candidates = plan.order
    else:
        below = set(plan.descendants.get(finished, ()))
        candidates = tuple(step for step in plan.order if step.step_id in below)
        needed = below | {d for step in candidates for d in step.depends_on}
        stages = _load_stages(ctx, run_id, needed)
    ready: list[str] = []
    for step in candidates:
        stage = stages.get(step.step_id)
        if stage is None or stage["status"] != "QUEUED":
            continue
        deps = [stages[d]["status"] for d in step.depends_on if d in stages]
        if any(not is_terminal(s) for s in deps):
            continue
        if not should_run(step.trigger, deps):
            moved = transition(
                ctx.state,
                stage_path(run_id, step.step_id),
                TransitionRequest("stage", "SKIPPED", only_from=frozenset({"QUEUED"})),
            )
            stages[step.step_id] = moved.doc or {**stage, "status": moved.status}
            continue
        owner = stage.get("dispatched_by")
        if owner is None and set_fields_if(
            ctx.state,
            stage_path(run_id, step.step_id),
            {"dispatched_by": actor},
            lambda d: d.get("dispatched_by") is None,
        ):
            owner = actor
        if owner == actor:
            ready.append(step.step_id)
    publish_stage_tasks(ctx.bus, run, ready)
    if finished is None:
        if all(is_terminal(str(s["status"])) for s in stages.values()):
            finish_run(ctx, run, list(stages.values()))
    elif not ctx.state.list(stages_collection(run_id), [Filter("status", "in", ACTIVE_STAGE_STATUSES)], limit=1):
        finish_run(ctx, run, list_stages(ctx.state, run_id))


def _load_stages(ctx: Context, run_id: str, stage_ids: set[str]) -> dict[str, dict[str, Any]]:
    """A few stages by id, or all of them in one query when that is cheaper."""
    if len(stage_ids) > _FEW_STAGES:
        return {str(s["stage_id"]): s for s in list_stages(ctx.state, run_id) if s["stage_id"] in stage_ids}
    found = {sid: ctx.state.get(stage_path(run_id, sid)) for sid in stage_ids}
    return {sid: doc for sid, doc in found.items() if doc is not None}


# ---------------------------------------------------------------------------------------------------- finish a run
def finish_run(ctx: Context, run: dict[str, Any], stages: list[dict[str, Any]]) -> None:
    status, error = derive_run_status(stages)
    failed = next((s["stage_id"] for s in stages if s["status"] in ("FAILED", "TIMED_OUT")), None)
    result = transition_run(ctx.state, run["run_id"], status, error=error, failed_stage=failed)
    if result.applied or is_terminal(result.status):
        finalize_if_needed(ctx, result.doc, stages)


def finalize_if_needed(ctx: Context, run: dict[str, Any], stages: list[dict[str, Any]] | None = None) -> None:
    """Finalise a terminal run that is not finalised yet (its stages are listed when not given)."""
    if is_terminal(str(run.get("status"))) and not run.get("finalized"):
        finalize_run(ctx, run, stages if stages is not None else list_stages(ctx.state, str(run["run_id"])))


def finalize_run(ctx: Context, run: dict[str, Any], stages: list[dict[str, Any]], now: datetime | None = None) -> None:
    """Side effects of a terminal run, each idempotent, under a short lease until `finalized` is recorded.

    The lease keeps two deliveries from finalising at once (their delete-then-insert of history rows would
    interleave); a finaliser that dies lets the lease lapse and the next delivery or the watchdog redoes it all.
    """
    path = run_path(run["run_id"])
    now = now or utc_now()

    def lease_free(doc: dict[str, Any]) -> bool:
        until = doc.get("finalizing_until")
        return not doc.get("finalized") and (not until or parse_iso(until) <= now)

    lease = {"finalizing_until": iso(now + timedelta(seconds=FINALIZE_LEASE_S)), "finalizing_by": secrets.token_hex(6)}
    if not set_fields_if(ctx.state, path, lease, lease_free):
        if (ctx.state.get(path) or {}).get("finalized"):
            return
        raise TransientError("another delivery is finalising this run", retry_after_seconds=1.0)
    metadata.record_run(ctx, run, stages)
    status = str(run["status"])
    publish_status_event(
        ctx.bus, run, RUN_EVENT_TYPES[status], status, error=run.get("error"), duration_ms=run.get("duration_ms")
    )
    from shared.tenancy.admission import release_run_slot

    release_run_slot(ctx, run)
    set_fields_if(ctx.state, path, {"finalized": True}, lambda d: not d.get("finalized"))
    log.info("run %s in %s ms", status, run.get("duration_ms"))
