"""Tenant routes about pipelines and runs: execute, backfill, re-run, cancel, list/get executions, pipelines, usage.

Every run-creating route goes through `admit_run` (the same gate as scheduled runs) and then publishes
`run.requested`; a repeated idempotency key finds the first run and re-publishes it only while it is still QUEUED.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.api.base import (
    ApiRequest,
    ApiResponse,
    ChoiceQuery,
    IntQuery,
    PatternQuery,
    Route,
    TimestampQuery,
    validate_body,
)
from shared.catalog.listing import describe_pipelines
from shared.contracts.messages import Trigger
from shared.contracts.states import RunStatus
from shared.observability import timed_admission
from shared.pipelines.spec import IDENTIFIER
from shared.runs.admission import usage
from shared.runs.backfill import DEFAULT_MAX_ACTIVE_RUNS, MAX_BACKFILL_DAYS, BackfillRequest, start_backfill
from shared.runs.operations import cancel, require_runnable_here, rerun, start_run
from shared.runs.store import CreatedRun, get_run, list_runs, list_stages, public_run
from shared.runtime.context import Context
from shared.tenancy.apikeys import Scope

RUN_STATUSES = [s.value for s in RunStatus]
STATUS = ChoiceQuery("status", choices=tuple(RUN_STATUSES))
PIPELINE = PatternQuery("pipeline_id", pattern=IDENTIFIER.pattern, meaning="a pipeline id (letters, digits, _)")
LIMIT = IntQuery("limit", default=50, low=1, high=500)
CREATED_AFTER = TimestampQuery("created_after", "ISO 8601 date or date-time (inclusive; UTC if no offset)")
CREATED_BEFORE = TimestampQuery("created_before", "ISO 8601 date or date-time (exclusive)")


class ExecuteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pipeline_id: str = Field(pattern=IDENTIFIER.pattern, max_length=63)
    parameters: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class RerunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    from_failure: bool = Field(
        default=True,
        description="true: carry over the stages that SUCCEEDED (the source run must have failed, timed out or been "
        "cancelled); false: run every stage again (any finished run).",
    )


class BackfillBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start_date: date
    end_date: date = Field(description="Inclusive.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Given to every run; run_date is set per day.")
    backfill_id: str = Field(
        default="default",
        pattern=r"^[A-Za-z0-9_\-]{1,64}$",
        description="Runs are idempotent per (backfill_id, pipeline, date, parameters): repeat to resume and to "
        "retry the dates whose run failed.",
    )
    max_active_runs: int = Field(
        default=DEFAULT_MAX_ACTIVE_RUNS,
        ge=1,
        le=MAX_BACKFILL_DAYS,
        description="At most this many of its runs QUEUED or RUNNING at once.",
    )
    retry_failed: bool = Field(
        default=True, description="Give the dates whose run FAILED, TIMED_OUT or was CANCELLED a new attempt."
    )


def _accepted(tenant_id: str, created: CreatedRun) -> ApiResponse:
    return ApiResponse(
        202 if created.created else 200,
        {"run_id": created.run_id, "status": created.doc["status"], "created": created.created},
        {"Location": f"/api/v1/tenants/{tenant_id}/metadata/executions/{created.run_id}"},
    )


def execute_pipeline(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    """A repeated idempotency_key answers the first run (200); the same key with a different body is a 409."""
    body: ExecuteBody = validate_body(ExecuteBody, req.json_body)
    tenant_id = params["tenant_id"]
    trigger = Trigger(type="api", user_id=req.user_id)
    require_runnable_here(ctx, tenant_id, body.pipeline_id)
    with timed_admission("api"):
        created = start_run(ctx, tenant_id, body.pipeline_id, body.parameters, trigger, body.idempotency_key)
    return _accepted(tenant_id, created)


def rerun_execution(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    """A new run of the same pipeline and parameters; with from_failure (the default) the stages that SUCCEEDED in
    the source run are carried over."""
    body: RerunBody = validate_body(RerunBody, req.json_body)
    tenant_id = params["tenant_id"]
    trigger = Trigger(type="rerun", user_id=req.user_id)
    created = rerun(ctx, tenant_id, params["run_id"], trigger, body.idempotency_key, body.from_failure)
    response = _accepted(tenant_id, created)
    response.body["resume_from_run" if body.from_failure else "rerun_of"] = params["run_id"]
    return response


def cancel_execution(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    """QUEUED/RUNNING -> CANCELLED; its QUEUED stages are cancelled, running ones finish and are discarded.

    Idempotent: cancelling a CANCELLED run answers 200 with the run; any other terminal run is a 409.
    """
    who = req.user_id or (req.principal.key_id if req.principal else "api")
    return ApiResponse(200, cancel(ctx, params["tenant_id"], params["run_id"], who))


def backfill_pipeline(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    """One idempotent run per date in [start_date, end_date], at most max_active_runs at once (the rest start as the
    maintenance tick or a repeat finds room). A repeat retries the dates whose run failed and resumes after a quota
    stop (shared/runs/backfill.py)."""
    body: BackfillBody = validate_body(BackfillBody, req.json_body)
    tenant_id, pipeline_id = params["tenant_id"], params["pipeline_id"]
    request = BackfillRequest(
        tenant_id, pipeline_id, body.start_date, body.end_date, body.parameters, body.backfill_id, body.max_active_runs
    )
    state = start_backfill(ctx, request, req.user_id, body.retry_failed)
    return ApiResponse(202 if state.created_any else 200, state.as_body(pipeline_id, body.backfill_id))


def list_executions(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    status, pipeline_id, limit = STATUS.read(req.query), PIPELINE.read(req.query), LIMIT.read(req.query)
    after, before = CREATED_AFTER.read(req.query), CREATED_BEFORE.read(req.query)
    runs = list_runs(ctx.state, params["tenant_id"], status, pipeline_id, limit, after, before)
    return ApiResponse(200, {"executions": [public_run(r) for r in runs], "count": len(runs)})


def get_execution(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    run = get_run(ctx.state, params["tenant_id"], params["run_id"])
    return ApiResponse(200, public_run(run, list_stages(ctx.state, run["run_id"])))


def list_pipelines(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    pipelines = describe_pipelines(ctx.settings.config_dir, params["tenant_id"])
    return ApiResponse(200, {"pipelines": pipelines, "count": len(pipelines)})


def get_usage(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    return ApiResponse(200, usage(ctx, params["tenant_id"]))


_T = "/api/v1/tenants/{tenant_id}"
_EXEC = f"{_T}/metadata/executions"
RUN_ROUTES: list[Route] = [
    Route(
        "POST", f"{_T}/pipelines/execute", execute_pipeline, "tenant",
        "Execute a pipeline (a repeated idempotency_key: 200 with its run; with another body: 409)",
        Scope.PIPELINES_EXECUTE, ExecuteBody, success=202, errors=(404, 409, 429, 503),
    ),
    Route(
        "POST", f"{_T}/pipelines/{{pipeline_id}}/backfill", backfill_pipeline, "tenant",
        "Backfill a pipeline over a date range (one idempotent run per date, max_active_runs at once; repeat to "
        "resume and retry failed dates)", Scope.PIPELINES_EXECUTE,
        BackfillBody, success=202, errors=(404, 409, 429, 503),
    ),
    Route("GET", f"{_T}/pipelines", list_pipelines, "tenant", "List the tenant's pipelines", Scope.PIPELINES_READ,
          tag="pipelines"),
    Route(
        "GET", _EXEC, list_executions, "tenant", "List executions (newest first)", Scope.RUNS_READ,
        query=(STATUS, PIPELINE, LIMIT, CREATED_AFTER, CREATED_BEFORE),
    ),
    Route("GET", f"{_EXEC}/{{run_id}}", get_execution, "tenant", "An execution with its stages and attempts",
          Scope.RUNS_READ, errors=(404,)),
    Route("POST", f"{_EXEC}/{{run_id}}/cancel", cancel_execution, "tenant", "Cancel an execution", Scope.RUNS_CANCEL,
          errors=(404, 409, 503)),
    Route(
        "POST", f"{_EXEC}/{{run_id}}/rerun", rerun_execution, "tenant",
        "Re-run an execution: from its failed step (from_failure, the default: stages that succeeded are carried "
        "over) or in full",
        Scope.PIPELINES_EXECUTE, RerunBody, success=202, errors=(404, 409, 429, 503),
    ),
    Route("GET", f"{_T}/usage", get_usage, "tenant", "Quota usage and plan limits", Scope.USAGE_READ, tag="tenancy"),
]  # fmt: skip
