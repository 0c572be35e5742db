"""What a tenant's run history says, beyond single runs: the data-quality results of a run and a per-pipeline,
per-day summary of recent runs. The history routes (shared/api/history_routes.py) and through them the run-history
page and `cloudact runs show` answer with these.

- A run's quality results are read from `{tenant}_metadata.dq_results`, the table `quality.check` steps append (the
  latest result per check is kept); a run without such a step costs no warehouse query (nor, locally, the DuckDB
  file lock).
- The summary buckets the tenant's recent runs per pipeline and calendar day (in the caller's UTC offset, so a
  browser's chart starts its days at the viewer's midnight): counts, success rate, durations. It reads the run
  documents of the state store (a range on `created_at`, served by the run-listing indexes), so it also counts runs
  still going and works while the warehouse is busy.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.clock import iso, parse_iso, utc_now
from shared.contracts.states import RunStatus
from shared.metadata_tables import read_dq_results
from shared.ports.state import StateStore
from shared.runs.store import get_run, list_runs, load_run_spec
from shared.runtime.context import Context

SUMMARY_MAX_RUNS = 5000
"""A summary reads at most this many runs (newest first) and says `truncated` when the window held more."""
FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT)
"""The statuses a success rate is computed over: a cancelled run is a decision, not an outcome; an active one has
no outcome yet."""
_DQ_COLUMNS = (
    "step_id, check_name, check_type, severity, status, table_name, column_name, failed_rows, total_rows, "
    "observed, expected, message, checked_at"
)


def quality_of_run(ctx: Context, tenant_id: str, run_id: str) -> dict[str, Any]:
    """The data-quality results of one run (every `quality.check` step), as recorded in the warehouse. The run is
    looked up for the tenant first: another tenant's run id is a 404 exactly like a missing one."""
    run = get_run(ctx.state, tenant_id, run_id)
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
    return {
        "run_id": run["run_id"],
        "results": results,
        "count": len(results),
        **counts,
        "steps": sorted({str(r["step_id"]) for r in results} | set(stages_with_checks)),
    }


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


def _percentile(values: list[int], fraction: float) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _bucket_stats(runs: list[dict[str, Any]]) -> dict[str, Any]:
    by_status = {s: sum(r.get("status") == s for r in runs) for s in (*FINISHED, RunStatus.CANCELLED)}
    finished = sum(by_status[s] for s in FINISHED)
    durations = [
        int(r["duration_ms"]) for r in runs if r.get("status") in FINISHED and r.get("duration_ms") is not None
    ]
    return {
        "runs": len(runs),
        "succeeded": by_status[RunStatus.SUCCEEDED],
        "failed": by_status[RunStatus.FAILED] + by_status[RunStatus.TIMED_OUT],
        "cancelled": by_status[RunStatus.CANCELLED],
        "active": len(runs) - finished - by_status[RunStatus.CANCELLED],
        "success_rate": round(by_status[RunStatus.SUCCEEDED] / finished, 4) if finished else None,
        "median_duration_ms": _percentile(durations, 0.5),
        "p95_duration_ms": _percentile(durations, 0.95),
        "max_duration_ms": max(durations) if durations else None,
    }


def summarize_runs(
    state: StateStore, tenant_id: str, days: int, utc_offset_minutes: int = 0, pipeline_id: str | None = None
) -> dict[str, Any]:
    """Per pipeline and per calendar day (in `utc_offset_minutes`) of the last `days` days: runs, success rate,
    durations, from the run documents (at most SUMMARY_MAX_RUNS, newest first; `truncated` says when there were
    more)."""
    offset = timedelta(minutes=utc_offset_minutes)
    now = utc_now()
    first_day = (now + offset).date() - timedelta(days=days - 1)
    since = datetime.combine(first_day, datetime.min.time(), UTC) - offset
    runs = list_runs(state, tenant_id, None, pipeline_id, SUMMARY_MAX_RUNS + 1, created_after=iso(since))
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
    return {
        "since": iso(since),
        "until": iso(now),
        "utc_offset_minutes": utc_offset_minutes,
        "dates": [(first_day + timedelta(days=i)).isoformat() for i in range(days)],
        "runs_considered": len(runs),
        "truncated": truncated,
        "pipelines": pipelines,
    }
