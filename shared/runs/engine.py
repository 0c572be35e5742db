"""The run engine: start a run, execute one stage, advance the DAG, finish the run. Every entry is idempotent.

Pub/Sub delivers at least once, so each entry point re-derives what to do from state:
- a stage runs under a claim `claims/{run}:{stage}:{attempt}` made with create(): one winner per attempt;
- a ready stage is dispatched by whoever flags it first (`dispatched_by`); that same actor re-publishes on redelivery,
  so a crash between flagging and publishing loses nothing, and a join fires once however many parents finish together;
- a finished run is finalised (metadata, event, quota slot) until `finalized` is set, so a crash there is redone.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from datetime import date, timedelta
from typing import Any

from shared import logs
from shared.contracts.messages import EventType, RunRequest, StageTask
from shared.errors import ClientError, TerminalError, TransientError
from shared.observability import stage_span
from shared.pipelines.loader import PipelineValidationError, find_pipeline, snapshot
from shared.pipelines.parameters import resolve_run_parameters, typed_values
from shared.pipelines.spec import PipelineSpec, StepSpec
from shared.processors.base import StepContext, StepResult
from shared.processors.registry import get_processor
from shared.runs import metadata
from shared.runs.events import publish_stage_tasks, publish_status_event
from shared.runs.machine import (
    TransitionRequest,
    claim_path,
    iso,
    parse_iso,
    run_path,
    set_fields_if,
    stage_path,
    transition,
    transition_run,
    utc_now,
)
from shared.runs.states import is_terminal
from shared.runs.store import create_run, list_stages
from shared.runtime.context import Context

log = logs.get_logger("cloudact.engine")
LEASE_GRACE_S = 60.0
RUN_EVENT_TYPES: dict[str, EventType] = {
    "SUCCEEDED": "run.succeeded",
    "FAILED": "run.failed",
    "CANCELLED": "run.cancelled",
    "TIMED_OUT": "run.timed_out",
}


class StageTimeout(Exception):
    pass


_SPECS: OrderedDict[str, tuple[PipelineSpec, tuple[StepSpec, ...]]] = OrderedDict()
_SPECS_LOCK = threading.Lock()


def _compiled(run: dict[str, Any]) -> tuple[PipelineSpec, tuple[StepSpec, ...]]:
    """The run's spec snapshot, validated once per process (it never changes once the run is RUNNING)."""
    run_id = str(run["run_id"])
    with _SPECS_LOCK:
        hit = _SPECS.get(run_id)
        if hit is not None:
            _SPECS.move_to_end(run_id)
            return hit
    spec = PipelineSpec.model_validate(run["spec"])
    entry = (spec, topological_order(spec))
    with _SPECS_LOCK:
        _SPECS[run_id] = entry
        while len(_SPECS) > 512:
            _SPECS.popitem(last=False)
    return entry


def run_spec(run: dict[str, Any]) -> PipelineSpec:
    return _compiled(run)[0]


def resolve_parameters(spec: PipelineSpec, given: dict[str, Any]) -> dict[str, Any]:
    """Canonical (JSON-native) run parameters; a TerminalError naming the parameter if one is bad."""
    return resolve_run_parameters(spec, given)


# ---------------------------------------------------------------------------------------------------- start a run
def start_run(ctx: Context, req: RunRequest) -> None:
    state = ctx.state
    run = state.get(run_path(req.run_id))
    if run is None:  # producers record the run before publishing; rebuild it if that write was lost
        run = create_run(state, req.tenant_id, req.pipeline_id, req.parameters, req.trigger, run_id=req.run_id).doc
    if is_terminal(str(run["status"])):
        log.info("run already %s; request ignored", run["status"])
        return
    if run["status"] == "QUEUED":
        try:
            spec = find_pipeline(ctx.settings.config_dir, req.tenant_id, req.pipeline_id)
            params = resolve_parameters(spec, dict(run.get("parameters") or {}))
        except (PipelineValidationError, TerminalError, ClientError) as exc:
            _fail_before_start(ctx, run, str(exc))
            return
        now = iso(utc_now())
        carried = _succeeded_in(ctx, run.get("resume_from_run"), now)
        for step in spec.steps:
            state.create(
                stage_path(req.run_id, step.step_id),
                {**_new_stage_doc(run, step, now), **carried.get(step.step_id, {})},
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
        run = result.doc if result.doc else run
        if result.applied:
            publish_status_event(ctx.bus, run, "run.started", "RUNNING")
        elif is_terminal(result.status):
            return
    advance(ctx, run, actor="run_starter")


def _new_stage_doc(run: dict[str, Any], step: StepSpec, now: str) -> dict[str, Any]:
    return {
        "stage_id": step.step_id,
        "run_id": run["run_id"],
        "tenant_id": run["tenant_id"],
        "pipeline_id": run["pipeline_id"],
        "ps_type": step.ps_type,
        "depends_on": list(step.depends_on),
        "status": "QUEUED",
        "attempt": 0,
        "max_attempts": step.retries.max_attempts,
        "attempts": [],
        "created_at": now,
    }


def _succeeded_in(ctx: Context, source_run_id: Any, now: str) -> dict[str, dict[str, Any]]:
    """A re-run (`resume_from_run`): the source run's SUCCEEDED stages start SUCCEEDED here and are not run again."""
    if not source_run_id:
        return {}
    return {
        str(s["stage_id"]): {
            "status": "SUCCEEDED",
            "carried_from": source_run_id,
            **{k: s.get(k) for k in ("rows_in", "rows_out", "bytes_processed", "details")},
            "ended_at": now,
            "duration_ms": 0,
        }
        for s in list_stages(ctx.state, str(source_run_id))
        if s.get("status") == "SUCCEEDED"
    }


def _fail_before_start(ctx: Context, run: dict[str, Any], error: str) -> None:
    log.warning("run cannot start: %s", error)
    result = transition_run(ctx.state, run["run_id"], "FAILED", error=error)
    if result.applied or (is_terminal(result.status) and not result.doc.get("finalized")):
        finalize_run(ctx, result.doc or run, [])


# ---------------------------------------------------------------------------------------------------- run a stage
def execute_stage(ctx: Context, task: StageTask) -> None:
    state = ctx.state
    run = state.get(run_path(task.run_id))
    if run is None or run.get("tenant_id") != task.tenant_id:
        raise TerminalError(f"stage task for unknown run {task.run_id}")
    spath = stage_path(task.run_id, task.stage_id)
    if is_terminal(str(run["status"])):
        transition(state, spath, TransitionRequest("stage", "CANCELLED", only_from=frozenset({"QUEUED"})))
        return
    spec = run_spec(run)
    step = spec.step(task.stage_id)
    current = state.get_versioned(spath)
    if current is None:
        raise TerminalError(f"run {task.run_id} has no stage {task.stage_id}")
    stage = current.data
    now = utc_now()
    if is_terminal(str(stage["status"])):
        advance(ctx, run, actor=task.stage_id, spec=spec)
        return
    if stage["status"] == "RUNNING" and now < parse_iso(stage["lease_until"]):
        left = (parse_iso(stage["lease_until"]) - now).total_seconds()
        raise TransientError(f"attempt {stage['attempt']} is running (lease {left:.0f}s left)", retry_after_seconds=1.0)
    if stage["status"] == "QUEUED" and stage.get("not_before") and now < parse_iso(stage["not_before"]):
        left = (parse_iso(stage["not_before"]) - now).total_seconds()
        raise TransientError(f"retry backoff: {left:.2f}s left", retry_after_seconds=left)
    history = list(stage.get("attempts") or [])
    if stage["status"] == "RUNNING":  # the worker holding the lease was lost
        history.append(_attempt_record(stage, "LOST", "worker lost (lease expired)", now))
    attempt = int(stage.get("attempt", 0)) + 1
    if attempt > step.retries.max_attempts:
        _finish_stage(ctx, run, spath, attempt - 1, "FAILED", history, error=_give_up(stage, step))
        advance(ctx, run, actor=task.stage_id, spec=spec)
        return
    if not state.create(claim_path(task.run_id, task.stage_id, attempt), {"at": iso(now), "run_id": task.run_id}):
        raise TransientError(f"attempt {attempt} of {task.stage_id} is claimed by another delivery", 1.0)
    lease = now + timedelta(minutes=step.timeout_minutes, seconds=LEASE_GRACE_S)
    started = transition(
        state,
        spath,
        TransitionRequest(
            "stage",
            "RUNNING",
            attempt,
            fields={"attempt": attempt, "lease_until": iso(lease), "attempt_started_at": iso(now)},
        ),
    )
    if not started.applied:
        raise TransientError(f"stage moved while claiming: {started.reason}", 1.0)
    with logs.log_context(stage_id=task.stage_id, attempt=attempt):
        _run_attempt(ctx, run, spec, step, started.doc, attempt, history)


def _give_up(stage: dict[str, Any], step: StepSpec) -> str:
    last = stage.get("last_error") or "no error recorded"
    return f"gave up after {step.retries.max_attempts} attempts; last error: {last}"


def _attempt_record(
    stage: dict[str, Any], status: str, error: str | None, now: Any, result: StepResult | None = None
) -> dict[str, Any]:
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
    step_ctx = StepContext(
        tenant_id=run["tenant_id"],
        pipeline_id=run["pipeline_id"],
        run_id=run["run_id"],
        stage_id=step.step_id,
        attempt=attempt,
        run_date=date.fromisoformat(str(run["run_date"])),
        parameters=typed_values(spec.parameters, run.get("parameters")),
        variables=dict(spec.variables),
        warehouse=ctx.warehouse,
        deadline_monotonic=_monotonic() + timeout_s,
    )
    try:
        with stage_span(step.step_id, step.ps_type, attempt):
            result = _call_with_timeout(lambda: get_processor(step.ps_type).run(step, step_ctx), timeout_s)
    except StageTimeout:
        error = f"timed out after {step.timeout_minutes:g} min"
        _finish_stage(
            ctx,
            run,
            spath,
            attempt,
            "TIMED_OUT",
            [*history, _attempt_record(stage, "TIMED_OUT", error, utc_now())],
            error=error,
        )
    except TerminalError as exc:
        _finish_stage(
            ctx,
            run,
            spath,
            attempt,
            "FAILED",
            [*history, _attempt_record(stage, "FAILED", str(exc), utc_now())],
            error=str(exc),
        )
    except Exception as exc:  # transient by default: a processor bug is retried, then FAILED with its error
        error = f"{type(exc).__name__}: {exc}"
        history = [*history, _attempt_record(stage, "FAILED", error, utc_now())]
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
                    "attempts": [*history, _attempt_record(stage, "SUCCEEDED", None, now, result)],
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
    advance(ctx, run, actor=step.step_id, spec=spec)


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


def _monotonic() -> float:
    import time

    return time.monotonic()


def _call_with_timeout(fn: Any, timeout_s: float) -> StepResult:
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


# ---------------------------------------------------------------------------------------------------- advance the DAG
def advance(ctx: Context, run: dict[str, Any], actor: str, spec: PipelineSpec | None = None) -> None:
    """Skip what can no longer run, dispatch what is ready, finish the run when every stage is terminal."""
    spec, order = _compiled(run) if spec is None or "spec" in run else (spec, topological_order(spec))
    stages = {str(s["stage_id"]): s for s in list_stages(ctx.state, run["run_id"])}
    ready: list[str] = []
    for step in order:
        stage = stages.get(step.step_id)
        if stage is None or stage["status"] != "QUEUED":
            continue
        deps = [stages[d]["status"] for d in step.depends_on if d in stages]
        if any(not is_terminal(s) for s in deps):
            continue
        if not _should_run(step.trigger, deps):
            moved = transition(
                ctx.state,
                stage_path(run["run_id"], step.step_id),
                TransitionRequest("stage", "SKIPPED", only_from=frozenset({"QUEUED"})),
            )
            stages[step.step_id] = moved.doc or {**stage, "status": moved.status}
            continue
        owner = stage.get("dispatched_by")
        if owner is None and set_fields_if(
            ctx.state,
            stage_path(run["run_id"], step.step_id),
            {"dispatched_by": actor},
            lambda d: d.get("dispatched_by") is None,
        ):
            owner = actor
        if owner == actor:
            ready.append(step.step_id)
    publish_stage_tasks(ctx.bus, run, ready)
    if all(is_terminal(str(s["status"])) for s in stages.values()):
        finish_run(ctx, run, list(stages.values()))


def _should_run(trigger: str, dep_statuses: list[str]) -> bool:
    if trigger == "always":
        return True
    if trigger == "on_failure":
        return any(s in ("FAILED", "TIMED_OUT") for s in dep_statuses)
    return all(s == "SUCCEEDED" for s in dep_statuses)


def topological_order(spec: PipelineSpec) -> tuple[StepSpec, ...]:
    """Kahn's algorithm; a step comes after everything it depends on (so one pass can cascade skips)."""
    indegree = {s.step_id: len(s.depends_on) for s in spec.steps}
    dependants = spec.dependants()
    by_id = {s.step_id: s for s in spec.steps}
    queue = deque(s.step_id for s in spec.steps if not s.depends_on)
    order: list[StepSpec] = []
    while queue:
        sid = queue.popleft()
        order.append(by_id[sid])
        for child in dependants.get(sid, []):
            indegree[child] -= 1
            if indegree[child] == 0:
                queue.append(child)
    if len(order) != len(spec.steps):  # validation rejects cycles; never loop on a bad snapshot
        raise TerminalError("pipeline has a dependency cycle")
    return tuple(order)


# ---------------------------------------------------------------------------------------------------- finish a run
def derive_run_status(stages: list[dict[str, Any]]) -> tuple[str, str | None]:
    by_status = {str(s["status"]) for s in stages}
    for status in ("FAILED", "TIMED_OUT", "CANCELLED"):
        if status in by_status:
            first = next(s for s in stages if s["status"] == status)
            return status, f"stage {first['stage_id']}: {first.get('error') or status.lower()}"
    return "SUCCEEDED", None


def finish_run(ctx: Context, run: dict[str, Any], stages: list[dict[str, Any]]) -> None:
    status, error = derive_run_status(stages)
    failed = next((s["stage_id"] for s in stages if s["status"] in ("FAILED", "TIMED_OUT")), None)
    result = transition_run(ctx.state, run["run_id"], status, error=error, failed_stage=failed)
    if result.applied or (is_terminal(result.status) and not result.doc.get("finalized")):
        finalize_run(ctx, result.doc, stages)


def finalize_run(ctx: Context, run: dict[str, Any], stages: list[dict[str, Any]]) -> None:
    """Side effects of a terminal run, each idempotent, repeated until `finalized` is recorded."""
    metadata.record_run(ctx, run, stages)
    status = str(run["status"])
    publish_status_event(
        ctx.bus, run, RUN_EVENT_TYPES[status], status, error=run.get("error"), duration_ms=run.get("duration_ms")
    )
    from shared.tenancy.admission import release_run_slot

    release_run_slot(ctx, run)
    set_fields_if(ctx.state, run_path(run["run_id"]), {"finalized": True}, lambda d: not d.get("finalized"))
    log.info("run %s in %s ms", status, run.get("duration_ms"))
