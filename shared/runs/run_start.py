"""Starting a run: the run_starter's one entry, idempotent like every hop.

A run request creates the stage documents (carrying over the stages a resumed run already finished), stores the
pipeline snapshot, moves the run to RUNNING and dispatches its roots; a redelivery finds each of those done and only
publishes run.started again (the notifier drops repeats by event id) and re-dispatches (a flagged root is published by
the actor that flagged it).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared import logs
from shared.catalog.loader import PipelineValidationError, find_pipeline, snapshot
from shared.clock import iso, utc_now
from shared.contracts.messages import RunRequest
from shared.contracts.state_paths import run_path, stage_path
from shared.contracts.states import RunStatus, is_terminal
from shared.errors import ClientError, TerminalError
from shared.pipelines.parameters import resolve_run_parameters
from shared.runs.dag import advance
from shared.runs.events import publish_status_event
from shared.runs.finalize import finalize_if_needed
from shared.runs.machine import transition_run
from shared.runs.store import carried_stages, create_run, join_groups, new_stage_doc, save_run_spec
from shared.runtime.context import Context

log = logs.get_logger(__name__)


def start_run(ctx: Context, req: RunRequest) -> None:
    state = ctx.state
    run = state.get(run_path(req.run_id))
    if run is None:  # producers record the run before publishing; rebuild it if that write was lost
        run = create_run(
            state,
            req.tenant_id,
            req.pipeline_id,
            req.parameters,
            req.trigger,
            run_id=req.run_id,
            retention_days=ctx.settings.run_retention_days,
        ).doc
    if is_terminal(str(run["status"])):
        log.info("run already %s; request ignored", run["status"])
        finalize_if_needed(ctx, run)
        return
    if run["status"] == RunStatus.QUEUED:
        try:
            spec = find_pipeline(ctx.settings.config_dir, req.tenant_id, req.pipeline_id)
            params = resolve_run_parameters(spec, dict(run.get("parameters") or {}))
        except (PipelineValidationError, TerminalError, ClientError) as exc:
            _fail_before_start(ctx, run, str(exc))
            return
        now = iso(utc_now())
        carried = carried_stages(state, run.get("resume_from_run"), now)
        for step in spec.steps:
            # A wide join learns carried dependencies from the start's advance instead (their groups, shared/runs/dag)
            wide = join_groups(len(step.depends_on)) != len(step.depends_on)
            done = {} if wide else {d: str(carried[d]["status"]) for d in step.depends_on if d in carried}
            state.create(
                stage_path(req.run_id, step.step_id),
                {**new_stage_doc(run, step, now, done), **carried.get(step.step_id, {})},
            )
        save_run_spec(state, run, snapshot(spec))
        result = transition_run(
            state,
            req.run_id,
            RunStatus.RUNNING,
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
    publish_status_event(ctx.bus, run, "run.started", RunStatus.RUNNING)
    advance(ctx, run, actor="run_starter")


def _fail_before_start(ctx: Context, run: dict[str, Any], error: str) -> None:
    log.warning("run cannot start: %s", error)
    result = transition_run(ctx.state, run["run_id"], RunStatus.FAILED, error=error)
    finalize_if_needed(ctx, result.doc or run)
