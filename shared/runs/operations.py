"""Operations on runs that the HTTP API and the CLI share: start a run, re-run one, cancel one.

They live here, not in the API handlers, so `cloudact runs cancel | rerun` and `cloudact backfill` do exactly what the
routes do. Every operation is idempotent: a repeated idempotency key finds the first run, and a key reused for a
*different* request is a 409 naming the fields that differ (as payment APIs answer), never the old run in silence.
"""

from __future__ import annotations

from typing import Any

from shared.catalog.sql_check import require_translatable
from shared.clock import parse_iso
from shared.contracts import topics
from shared.contracts.envelope import OutboundMessage
from shared.contracts.messages import RunRequest, Trigger
from shared.contracts.state_paths import stage_path
from shared.contracts.states import RERUNNABLE, RunStatus, StageStatus
from shared.errors import Conflict, ServiceUnavailable, TransientError
from shared.observability import with_trace_context
from shared.pipelines.parameters import validate_run_parameters
from shared.ports.state import Doc
from shared.runs.machine import TransitionRequest, transition, transition_run
from shared.runs.store import CreatedRun, get_run, list_stages, public_run
from shared.runtime.context import Context


def publish_run_request(ctx: Context, created: CreatedRun, trigger: Trigger, retryable: bool) -> None:
    """Publish `run.requested` for a QUEUED run; a run nobody can retry is failed rather than left QUEUED."""
    run = created.doc
    if run["status"] != RunStatus.QUEUED:  # run_starter ignores a request for a run that already started
        return
    message = RunRequest(
        run_id=created.run_id,
        tenant_id=run["tenant_id"],
        pipeline_id=run["pipeline_id"],
        parameters=dict(run.get("parameters") or {}),
        trigger=trigger,
        requested_at=parse_iso(run["created_at"]),
    )
    attributes = {
        "tenant_id": run["tenant_id"],
        "run_id": created.run_id,
        "pipeline_id": run["pipeline_id"],
        "kind": "run.requested",
    }
    try:
        ctx.bus.publish(topics.RUN_REQUESTS, [OutboundMessage(message.to_bytes(), with_trace_context(attributes))])
    except TransientError as exc:
        if not retryable:
            transition_run(ctx.state, created.run_id, RunStatus.FAILED, error=f"could not enqueue: {exc}")
        raise ServiceUnavailable("could not enqueue the run; retry with the same idempotency_key", 2) from exc


def request_differences(first: Doc, pipeline_id: str, parameters: dict[str, Any], extra: Doc) -> list[Doc]:
    """What differs between the run a key made first and this request: `[{field, first_request, this_request}]`."""
    out: list[Doc] = []
    if first.get("pipeline_id") != pipeline_id:
        out.append({"field": "pipeline_id", "first_request": first.get("pipeline_id"), "this_request": pipeline_id})
    before = dict(first.get("parameters") or {})
    for name in sorted(set(before) | set(parameters)):
        if before.get(name) != parameters.get(name):
            field = f"parameters.{name}"
            out.append({"field": field, "first_request": before.get(name), "this_request": parameters.get(name)})
    for name, value in extra.items():
        if first.get(name) != value:
            out.append({"field": name, "first_request": first.get(name), "this_request": value})
    return out


def require_same_request(
    created: CreatedRun, key: str | None, pipeline_id: str, parameters: dict[str, Any], extra: Doc | None = None
) -> None:
    """409 when `key` found a run made by a different request; nothing when the run is new or the request the same."""
    if created.created or not key:
        return
    differences = request_differences(created.doc, pipeline_id, parameters, extra or {})
    if differences:
        fields = ", ".join(str(d["field"]) for d in differences)
        raise Conflict(
            f"idempotency_key {key!r} was already used for a different request (run {created.run_id}); "
            f"differs in: {fields}. Use a new key for a new request",
            {"field": "idempotency_key", "run_id": created.run_id, "differences": differences},
        )


def require_runnable_here(ctx: Context, tenant_id: str, pipeline_id: str) -> None:
    """On the embedded warehouse, a 400 naming file:line:col when a SQL step of the pipeline cannot be translated to
    DuckDB, before the run is admitted (translation only, cached: no warehouse round trip). BigQuery runs the
    GoogleSQL as written. Asked by callers with someone to answer (execute); a scheduled run fails at its step."""
    if ctx.settings.warehouse != "duckdb":
        return
    from shared.adapters.duckdb_sql import transpile

    require_translatable(ctx.settings.config_dir, tenant_id, pipeline_id, ctx.settings.project, transpile)


def start_run(
    ctx: Context,
    tenant_id: str,
    pipeline_id: str,
    parameters: dict[str, Any],
    trigger: Trigger,
    idempotency_key: str | None,
    extra_fields: Doc | None = None,
) -> CreatedRun:
    """Admit (quota, plan, parameters), record and publish a run, once per idempotency key."""
    from shared.runs.admission import admit_run

    created, spec = admit_run(ctx, tenant_id, pipeline_id, parameters, trigger, idempotency_key, extra_fields)
    if idempotency_key and not created.created:
        canonical = validate_run_parameters(spec, parameters)
        compared = {"resume_from_run": None, **(extra_fields or {})}
        require_same_request(created, idempotency_key, pipeline_id, canonical, compared)
    publish_run_request(ctx, created, trigger, retryable=bool(idempotency_key))
    return created


def rerun(
    ctx: Context,
    tenant_id: str,
    run_id: str,
    trigger: Trigger,
    idempotency_key: str | None,
    from_failure: bool = True,
) -> CreatedRun:
    """A new run of the same pipeline and parameters. `from_failure`: the source run must have ended without success,
    and its stages that SUCCEEDED are carried over; otherwise every stage runs again (any finished run)."""
    source = get_run(ctx.state, tenant_id, run_id)
    allowed = RERUNNABLE if from_failure else (*RERUNNABLE, RunStatus.SUCCEEDED)
    if source["status"] not in allowed:
        what = "a FAILED, TIMED_OUT or CANCELLED run" if from_failure else "a finished run"
        raise Conflict(
            f"run {source['run_id']} is {source['status']}; only {what} can be re-run"
            + (" from its failure" if from_failure else ""),
            {"field": "run_id", "status": source["status"]},
        )
    extra = {"resume_from_run": source["run_id"]} if from_failure else {"rerun_of": source["run_id"]}
    parameters = dict(source.get("parameters") or {})
    return start_run(ctx, tenant_id, str(source["pipeline_id"]), parameters, trigger, idempotency_key, extra)


def cancel(ctx: Context, tenant_id: str, run_id: str, who: str) -> Doc:
    """QUEUED/RUNNING -> CANCELLED; its QUEUED stages are cancelled, running ones finish and are discarded.

    Idempotent: cancelling a CANCELLED run returns it; any other terminal run is a 409. Returns the public run."""
    from shared.runs.finalize import finalize_run

    run = get_run(ctx.state, tenant_id, run_id)
    result = transition_run(ctx.state, run_id, RunStatus.CANCELLED, error=f"cancelled by {who}", cancelled_by=who)
    if not result.applied and result.status != RunStatus.CANCELLED:
        raise Conflict(f"run {run_id} is already {result.status}", {"field": "run_id", "status": result.status})
    if result.applied or not result.doc.get("finalized"):
        for stage in list_stages(ctx.state, run_id):
            if stage["status"] == StageStatus.QUEUED:
                transition(
                    ctx.state,
                    stage_path(run_id, str(stage["stage_id"])),
                    TransitionRequest("stage", StageStatus.CANCELLED, only_from=frozenset({StageStatus.QUEUED})),
                )
        run = get_run(ctx.state, tenant_id, run_id)
        finalize_run(ctx, run, list_stages(ctx.state, run_id))
    run = get_run(ctx.state, tenant_id, run_id)
    return public_run(run, list_stages(ctx.state, run_id))
