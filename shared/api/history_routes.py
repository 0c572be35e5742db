"""Tenant routes that look back at runs: where notifications went, data-quality results, and a per-pipeline summary.

They feed the run-history page (`/ui/`) and are plain JSON routes of the same table as the others, so authorisation,
rate limits and the OpenAPI document come from the route entries below.

- `GET .../notifications` is the delivery log (`notifications/{id}` documents) filtered to the key's tenant.
- `GET .../metadata/executions/{run_id}/quality` reads `{tenant}_metadata.dq_results`, the table `quality.check`
  steps append (the latest result per check is kept); the run is looked up first, so another tenant's run id is a
  404 exactly like a missing one, and a run without such a step costs no warehouse query (nor, locally, the DuckDB
  file lock).
- `GET .../metadata/summary` buckets the tenant's recent runs per pipeline and calendar day (in the caller's UTC
  offset, so a browser's chart starts its days at the viewer's midnight): counts, success rate, durations. It reads
  the run documents of the state store (a range on `created_at`, served by the existing run-listing indexes), at
  most SUMMARY_MAX_RUNS of them, so it also counts runs still going and works while the warehouse is busy.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.api.base import ApiRequest, ApiResponse, ChoiceQuery, IntQuery, PatternQuery, Route
from shared.clock import iso, parse_iso, utc_now
from shared.metadata_tables import read_dq_results
from shared.notify import list_deliveries
from shared.pipelines.spec import IDENTIFIER
from shared.runs.store import get_run, list_runs, load_run_spec
from shared.runtime.context import Context
from shared.tenancy.apikeys import Scope

DELIVERY_STATUSES = ["queued", "retrying", "sent", "failed", "suppressed"]
RUN_ID_PATTERN = r"^run_[0-9a-f]{1,64}$"
SUMMARY_MAX_RUNS = 5000
"""A summary reads at most this many runs (newest first) and says `truncated` when the window held more."""
FINISHED = ("SUCCEEDED", "FAILED", "TIMED_OUT")
"""The statuses a success rate is computed over: a cancelled run is a decision, not an outcome; an active one has
no outcome yet."""
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
_DQ_COLUMNS = (
    "step_id, check_name, check_type, severity, status, table_name, column_name, failed_rows, total_rows, "
    "observed, expected, message, checked_at"
)


def list_notifications(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    """The tenant's notification log, newest first: channel, rule, status, attempts, error, where it went."""
    run_id, status = NOTIFICATIONS_RUN.read(req.query), NOTIFICATIONS_STATUS.read(req.query)
    limit = NOTIFICATIONS_LIMIT.read(req.query)
    deliveries = list_deliveries(ctx, params["tenant_id"], run_id, status, limit)
    return ApiResponse(200, {"notifications": deliveries, "count": len(deliveries)})


def _json_or_text(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _dq_row(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["observed"], out["expected"] = _json_or_text(row.get("observed")), _json_or_text(row.get("expected"))
    checked = row.get("checked_at")
    if isinstance(checked, datetime):
        out["checked_at"] = iso(checked if checked.tzinfo else checked.replace(tzinfo=UTC))
    return out


def run_quality(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    """The data-quality results of one run (every `quality.check` step), as recorded in the warehouse."""
    tenant_id = params["tenant_id"]
    run = get_run(ctx.state, tenant_id, params["run_id"])
    stages_with_checks = sorted(
        str(step["step_id"])
        for step in load_run_spec(ctx.state, run).get("steps", [])
        if isinstance(step, dict) and step.get("ps_type") == "quality.check" and "step_id" in step
    )
    results: list[dict[str, Any]] = []
    if stages_with_checks:  # no warehouse round trip (nor, locally, opening the tenant's file) for a run without checks
        rows = read_dq_results(ctx.warehouse_for(tenant_id), tenant_id, str(run["run_id"]), _DQ_COLUMNS)
        results = [_dq_row(r) for r in rows]
    counts = {s: sum(r["status"] == s for r in results) for s in ("pass", "fail", "error")}
    return ApiResponse(
        200,
        {
            "run_id": run["run_id"],
            "results": results,
            "count": len(results),
            **counts,
            "steps": sorted({str(r["step_id"]) for r in results} | set(stages_with_checks)),
        },
    )


def _percentile(values: list[int], fraction: float) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _bucket_stats(runs: list[dict[str, Any]]) -> dict[str, Any]:
    by_status = {s: sum(r.get("status") == s for r in runs) for s in (*FINISHED, "CANCELLED")}
    finished = sum(by_status[s] for s in FINISHED)
    durations = [
        int(r["duration_ms"]) for r in runs if r.get("status") in FINISHED and r.get("duration_ms") is not None
    ]
    return {
        "runs": len(runs),
        "succeeded": by_status["SUCCEEDED"],
        "failed": by_status["FAILED"] + by_status["TIMED_OUT"],
        "cancelled": by_status["CANCELLED"],
        "active": len(runs) - finished - by_status["CANCELLED"],
        "success_rate": round(by_status["SUCCEEDED"] / finished, 4) if finished else None,
        "median_duration_ms": _percentile(durations, 0.5),
        "p95_duration_ms": _percentile(durations, 0.95),
        "max_duration_ms": max(durations) if durations else None,
    }


def executions_summary(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    """Per pipeline and per calendar day of the last `days` days: runs, success rate, durations."""
    days = SUMMARY_DAYS.read(req.query)
    offset = timedelta(minutes=SUMMARY_OFFSET.read(req.query))
    pipeline_id = SUMMARY_PIPELINE.read(req.query)
    now = utc_now()
    first_day = (now + offset).date() - timedelta(days=days - 1)
    since = datetime.combine(first_day, datetime.min.time(), UTC) - offset
    runs = list_runs(ctx.state, params["tenant_id"], None, pipeline_id, SUMMARY_MAX_RUNS + 1, created_after=iso(since))
    truncated = len(runs) > SUMMARY_MAX_RUNS
    runs = runs[:SUMMARY_MAX_RUNS]
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for run in runs:
        day = (parse_iso(str(run["created_at"])) + offset).date().isoformat()
        grouped.setdefault(str(run["pipeline_id"]), {}).setdefault(day, []).append(run)
    pipelines = [
        {
            "pipeline_id": pid,
            **_bucket_stats([r for day_runs in by_day.values() for r in day_runs]),
            "days": [{"date": day, **_bucket_stats(by_day[day])} for day in sorted(by_day)],
        }
        for pid, by_day in sorted(grouped.items())
    ]
    return ApiResponse(
        200,
        {
            "since": iso(since),
            "until": iso(now),
            "utc_offset_minutes": int(offset.total_seconds() // 60),
            "dates": [(first_day + timedelta(days=i)).isoformat() for i in range(days)],
            "runs_considered": len(runs),
            "truncated": truncated,
            "pipelines": pipelines,
        },
    )


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
