"""Tenant route showing a stage's results: the first rows of the table it wrote (shared/runs/outputs.py).

The run is looked up for the key's tenant first, so another tenant's run id is a 404 exactly like a missing one, and
the rows come from that tenant's own warehouse. A stage that writes no table answers 200 with `table: null` and costs
no warehouse query.
"""

from __future__ import annotations

from shared.api.base import ApiRequest, ApiResponse, IntQuery, Route
from shared.runs.outputs import DEFAULT_PREVIEW_ROWS, MAX_PREVIEW_ROWS, run_stage, stage_preview
from shared.runs.store import get_run, list_stages, load_run_spec
from shared.runtime.context import Context
from shared.tenancy.apikeys import Scope

PREVIEW_LIMIT = IntQuery("limit", "Rows to return.", default=DEFAULT_PREVIEW_ROWS, low=1, high=MAX_PREVIEW_ROWS)


def preview_stage(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    """The first `limit` rows of the table a stage wrote, with its columns and row count."""
    limit = PREVIEW_LIMIT.read(req.query)
    tenant_id = params["tenant_id"]
    run = get_run(ctx.state, tenant_id, params["run_id"])
    stage = run_stage(list_stages(ctx.state, run["run_id"]), params["stage_id"])
    spec = load_run_spec(ctx.state, run)
    preview = stage_preview(lambda: ctx.warehouse_for(tenant_id), run, spec, stage, limit)
    return ApiResponse(200, {"run_id": run["run_id"], "limit": limit, **preview.as_dict()})


PREVIEW_ROUTES: list[Route] = [
    Route(
        "GET",
        "/api/v1/tenants/{tenant_id}/metadata/executions/{run_id}/stages/{stage_id}/preview",
        preview_stage,
        "tenant",
        "The first rows of the table a stage wrote (as the table holds them now)",
        Scope.RUNS_READ,
        query=(PREVIEW_LIMIT,),
        errors=(404,),
    ),
]
