"""Tenant routes that look back at runs: where notifications went, data-quality results, and a per-pipeline summary.

They feed the run-history page (`/ui/`) and are plain JSON routes of the same table as the others, so authorisation,
rate limits and the OpenAPI document come from the route entries below. What they answer is computed in
shared/notify (the delivery log, `notifications/{id}` documents filtered to the key's tenant) and shared/runs/history.py
(a run's quality results; the per-pipeline, per-day summary).
"""

from __future__ import annotations

from shared.api.base import ApiRequest, ApiResponse, ChoiceQuery, IntQuery, PatternQuery, Route
from shared.notify import list_deliveries
from shared.pipelines.spec import IDENTIFIER
from shared.runs.history import quality_of_run, summarize_runs
from shared.runtime.context import Context
from shared.tenancy.apikeys import Scope

DELIVERY_STATUSES = ["queued", "retrying", "sent", "failed", "suppressed"]
RUN_ID_PATTERN = r"^run_[0-9a-f]{1,64}$"
NOTIFICATIONS_RUN = PatternQuery("run_id", "Only this run's notifications.", pattern=RUN_ID_PATTERN, meaning="a run id")
NOTIFICATIONS_STATUS = ChoiceQuery("status", choices=tuple(DELIVERY_STATUSES))
NOTIFICATIONS_LIMIT = IntQuery("limit", default=100, low=1, high=500)
SUMMARY_DAYS = IntQuery("days", default=30, low=1, high=90)
SUMMARY_OFFSET = IntQuery(
    "utc_offset_minutes",
    "Days start at midnight in this offset (a browser sends -Date.getTimezoneOffset()).",
    default=0,
    low=-840,
    high=840,
)
SUMMARY_PIPELINE = PatternQuery("pipeline_id", pattern=IDENTIFIER.pattern, meaning="a pipeline id (letters, digits, _)")


def list_notifications(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    """The tenant's notification log, newest first: channel, rule, status, attempts, error, where it went."""
    run_id, status = NOTIFICATIONS_RUN.read(req.query), NOTIFICATIONS_STATUS.read(req.query)
    limit = NOTIFICATIONS_LIMIT.read(req.query)
    deliveries = list_deliveries(ctx, params["tenant_id"], run_id, status, limit)
    return ApiResponse(200, {"notifications": deliveries, "count": len(deliveries)})


def run_quality(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    """The data-quality results of one run (every `quality.check` step), as recorded in the warehouse."""
    return ApiResponse(200, quality_of_run(ctx, params["tenant_id"], params["run_id"]))


def executions_summary(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    """Per pipeline and per calendar day of the last `days` days: runs, success rate, durations."""
    days, offset = SUMMARY_DAYS.read(req.query), SUMMARY_OFFSET.read(req.query)
    summary = summarize_runs(ctx.state, params["tenant_id"], days, offset, SUMMARY_PIPELINE.read(req.query))
    return ApiResponse(200, summary)


_T = "/api/v1/tenants/{tenant_id}"
HISTORY_ROUTES: list[Route] = [
    Route(
        "GET", f"{_T}/notifications", list_notifications, "tenant",
        "Where notifications went (delivery log, newest first)", Scope.RUNS_READ, tag="notifications",
        query=(NOTIFICATIONS_RUN, NOTIFICATIONS_STATUS, NOTIFICATIONS_LIMIT),
    ),
    Route(
        "GET", f"{_T}/metadata/executions/{{run_id}}/quality", run_quality, "tenant",
        "The data-quality results of an execution (quality.check steps)", Scope.RUNS_READ, errors=(404,),
    ),
    Route(
        "GET", f"{_T}/metadata/summary", executions_summary, "tenant",
        "Runs, success rate and durations per pipeline and day over the last `days` days", Scope.RUNS_READ,
        query=(SUMMARY_DAYS, SUMMARY_OFFSET, SUMMARY_PIPELINE),
    ),
]  # fmt: skip
