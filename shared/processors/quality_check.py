"""`quality.check`: data-quality checks run as SQL inside the warehouse; results land in `{tenant}_metadata.dq_results`.

source: {dataset: billing, table: daily_costs}       (optional when every check is custom_sql)
config:
  checks:
    - {type: not_null, columns: [usage_date, service]}
    - {type: unique, columns: [usage_date, service, project_id]}
    - {type: accepted_values, column: currency, values: [USD, EUR]}
    - {type: range, column: cost, min: 0, max: 100000}
    - {type: regex, column: project_id, pattern: "^[a-z][a-z0-9-]+$"}
    - {type: row_count, min: 1}
    - {type: freshness, column: usage_start_time, max_age_hours: 36, reference: now | run_date}
    - {type: custom_sql, sql: "SELECT * FROM {tenant_id}_billing.daily_costs WHERE cost < 0", max_failures: 0}
  every check also takes `name` (default: type + column) and `severity: error | warn` (default error).

A failed (or broken) `error` check fails the step with a TerminalError after every check has run and been recorded,
so the dependants are skipped and `trigger: on_failure` steps fire; a `warn` check is only recorded. Each check is
its own query (one check's mistake does not hide the others' results; on BigQuery each scans only its columns).
Values reach SQL as query parameters; custom SQL follows the same tenant scope rules as bigquery.query.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from shared.clock import utc_now
from shared.errors import PipelineError, TerminalError
from shared.metadata_tables import record_dq_results
from shared.pipelines.spec import StepIssue, StepSpec
from shared.pipelines.sql_scope import query_parameter_names, render_checked_sql, validate_sql_template
from shared.pipelines.templating import ValidationScope, run_values
from shared.processors.base import StepContext, StepResult
from shared.processors.contract import ProcessorSpec
from shared.processors.quality_rules import (
    AcceptedValues,
    CustomSql,
    Freshness,
    NotNull,
    QualitySettings,
    QualityStep,
    Range,
    Regex,
    RowCount,
    Unique,
)
from shared.processors.step_config import parse_step, quote_column
from shared.processors.step_config import step_issues as _model_issues


def validate_step(step: StepSpec, scope: ValidationScope) -> list[StepIssue]:
    issues = _model_issues(QualityStep, step)
    for index, raw in enumerate(step.config.get("checks") or []):
        if isinstance(raw, dict) and raw.get("type") == "custom_sql" and isinstance(raw.get("sql"), str):
            for offset, message in validate_sql_template(raw["sql"], scope):
                issues.append(StepIssue(("config", "checks", index, "sql"), message, offset))
    return issues


# -- run ---------------------------------------------------------------------------------------------------------


class _Outcome:
    def __init__(self, failed_rows: int | None, passed: bool, observed: Any, expected: Any, message: str) -> None:
        self.failed_rows, self.passed, self.observed, self.expected, self.message = (
            failed_rows,
            passed,
            observed,
            expected,
            message,
        )


def _count(ctx: StepContext, sql: str, params: dict[str, Any] | None = None) -> int:
    value = ctx.warehouse.query(sql, params).column(0)[0].as_py()
    return int(value or 0)


def _not_null(ctx: StepContext, table: str, check: NotNull, total: int) -> _Outcome:
    cols = [quote_column(c) for c in check.columns]
    parts = ", ".join(f"COUNTIF({c} IS NULL) AS n{i}" for i, c in enumerate(cols))
    row = ctx.warehouse.query(f"SELECT COUNTIF({' OR '.join(f'{c} IS NULL' for c in cols)}) AS f, {parts} FROM {table}")
    nulls = {name: int(row.column(f"n{i}")[0].as_py() or 0) for i, name in enumerate(check.columns)}
    failed = int(row.column("f")[0].as_py() or 0)
    return _Outcome(failed, failed == 0, {"nulls": nulls}, {"nulls": 0}, f"{failed} of {total} rows have a null")


def _unique(ctx: StepContext, table: str, check: Unique, total: int) -> _Outcome:
    cols = ", ".join(quote_column(c) for c in check.columns)
    result = ctx.warehouse.query(
        f"SELECT COUNT(*) AS keys, COALESCE(SUM(n), 0) AS duplicate_rows "
        f"FROM (SELECT COUNT(*) AS n FROM {table} GROUP BY {cols} HAVING COUNT(*) > 1) AS d"
    )
    keys, rows = int(result.column("keys")[0].as_py() or 0), int(result.column("duplicate_rows")[0].as_py() or 0)
    return _Outcome(
        rows,
        keys == 0,
        {"duplicate_keys": keys, "duplicate_rows": rows},
        {"duplicate_keys": 0},
        f"{keys} key(s) appear more than once ({rows} rows)",
    )


def _accepted_values(ctx: StepContext, table: str, check: AcceptedValues, total: int) -> _Outcome:
    col = quote_column(check.column)
    where = f"{col} IS NOT NULL AND NOT ({col} IN UNNEST(@accepted))"
    params = {"accepted": list(check.values)}
    failed = _count(ctx, f"SELECT COUNTIF({where}) AS f FROM {table}", params)
    observed: dict[str, Any] = {}
    if failed:
        top = ctx.warehouse.query(
            f"SELECT CAST({col} AS STRING) AS value, COUNT(*) AS n FROM {table} WHERE {where} "
            "GROUP BY value ORDER BY n DESC, value LIMIT 5",
            params,
        )
        observed["unexpected"] = {r["value"]: int(r["n"]) for r in top.to_pylist()}
    return _Outcome(
        failed, failed == 0, observed, {"values": check.values}, f"{failed} rows outside the accepted values"
    )


def _range(ctx: StepContext, table: str, check: Range, total: int) -> _Outcome:
    col = quote_column(check.column)
    conditions, params = [], {}
    if check.min is not None:
        conditions.append(f"{col} < @low")
        params["low"] = check.min
    if check.max is not None:
        conditions.append(f"{col} > @high")
        params["high"] = check.max
    row = ctx.warehouse.query(
        f"SELECT COUNTIF({' OR '.join(conditions)}) AS f, MIN({col}) AS lo, MAX({col}) AS hi FROM {table}", params
    )
    failed = int(row.column("f")[0].as_py() or 0)
    observed = {"min": _jsonable(row.column("lo")[0].as_py()), "max": _jsonable(row.column("hi")[0].as_py())}
    return _Outcome(failed, failed == 0, observed, {"min": check.min, "max": check.max}, f"{failed} rows out of range")


def _regex(ctx: StepContext, table: str, check: Regex, total: int) -> _Outcome:
    col = quote_column(check.column)
    failed = _count(
        ctx,
        f"SELECT COUNTIF({col} IS NOT NULL AND NOT REGEXP_CONTAINS(CAST({col} AS STRING), @pattern)) AS f FROM {table}",
        {"pattern": check.pattern},
    )
    return _Outcome(failed, failed == 0, {}, {"pattern": check.pattern}, f"{failed} rows do not match the pattern")


def _row_count(ctx: StepContext, table: str, check: RowCount, total: int) -> _Outcome:
    low_ok = check.min is None or total >= check.min
    high_ok = check.max is None or total <= check.max
    passed = low_ok and high_ok
    return _Outcome(None, passed, {"rows": total}, {"min": check.min, "max": check.max}, f"{total} rows")


def _freshness(ctx: StepContext, table: str, check: Freshness, total: int) -> _Outcome:
    newest = ctx.warehouse.query(f"SELECT MAX({quote_column(check.column)}) AS newest FROM {table}").column(0)[0]
    value = newest.as_py()
    if check.reference == "now":
        reference = utc_now()
    else:
        reference = datetime.combine(ctx.run_date + timedelta(days=1), time(), UTC)
    expected = {"max_age_hours": check.max_age_hours, "reference": reference.isoformat()}
    if value is None:
        return _Outcome(None, False, {"newest": None}, expected, "no rows: nothing is fresh")
    if isinstance(value, datetime):
        newest_at = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, date):
        newest_at = datetime.combine(value + timedelta(days=1), time(), UTC)  # a day counts until its end
    else:
        raise TerminalError(f"freshness: column {check.column!r} is not a DATE or TIMESTAMP")
    age = (reference - newest_at).total_seconds() / 3600
    observed = {"newest": newest_at.isoformat(), "age_hours": round(age, 3)}
    return _Outcome(None, age <= check.max_age_hours, observed, expected, f"newest value is {age:.1f} h old")


def _custom_sql(ctx: StepContext, table: str | None, check: CustomSql, total: int) -> _Outcome:
    settings = ctx.settings
    values = run_values(
        tenant_id=ctx.tenant_id,
        run_id=ctx.run_id,
        run_date=ctx.run_date,
        pipeline_id=ctx.pipeline_id,
        project=settings.project,
        parameters=ctx.parameters,
        variables=ctx.variables,
    )
    sql = render_checked_sql(
        check.sql, values, tenant_id=ctx.tenant_id, project=settings.project, other_tenants=ctx.other_tenants()
    )
    available = {
        **ctx.variables,
        **ctx.parameters,
        "run_date": ctx.run_date,
        "run_id": ctx.run_id,
        "tenant_id": ctx.tenant_id,
        "pipeline_id": ctx.pipeline_id,
    }
    used = query_parameter_names(sql)
    missing = [n for n in used if n not in available]
    if missing:
        raise TerminalError(f"SQL uses undefined parameters: {', '.join('@' + m for m in missing)}")
    failed = _count(ctx, f"SELECT COUNT(*) AS f FROM (\n{sql}\n) AS failing_rows", {n: available[n] for n in used})
    return _Outcome(
        failed,
        failed <= check.max_failures,
        {},
        {"max_failures": check.max_failures},
        f"the query returned {failed} failing rows",
    )


_RUNNERS: dict[str, Callable[..., _Outcome]] = {
    "not_null": _not_null,
    "unique": _unique,
    "accepted_values": _accepted_values,
    "range": _range,
    "regex": _regex,
    "row_count": _row_count,
    "freshness": _freshness,
    "custom_sql": _custom_sql,
}


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


class QualityCheck:
    def run(self, step: StepSpec, ctx: StepContext) -> StepResult:
        cfg = parse_step(QualityStep, step)
        table = cfg.source.qualified(ctx) if cfg.source else None
        total = _count(ctx, f"SELECT COUNT(*) AS n FROM {table}") if table else 0
        checked_at = utc_now()
        rows: list[dict[str, Any]] = []
        for check in cfg.config.checks:
            try:
                outcome = _RUNNERS[check.type](ctx, table, check, total)
                status, message = ("pass" if outcome.passed else "fail"), outcome.message
            except PipelineError as exc:  # a broken check (missing column, bad SQL) is recorded, not fatal here
                outcome, status, message = _Outcome(None, False, {}, {}, str(exc)), "error", str(exc)
            rows.append(
                {
                    "run_id": ctx.run_id,
                    "tenant_id": ctx.tenant_id,
                    "pipeline_id": ctx.pipeline_id,
                    "step_id": step.step_id,
                    "check_name": check.check_name(),
                    "check_type": check.type,
                    "severity": check.severity,
                    "status": status,
                    "table_name": table,
                    "column_name": check.column_name(),
                    "failed_rows": outcome.failed_rows,
                    "total_rows": total if table else None,
                    "observed": json.dumps(outcome.observed, default=str, sort_keys=True),
                    "expected": json.dumps(outcome.expected, default=str, sort_keys=True),
                    "message": message[:2000],
                    "checked_at": checked_at,
                    "execution_date": ctx.run_date,
                }
            )
        record_dq_results(ctx.warehouse, ctx.tenant_id, ctx.run_id, step.step_id, rows)
        blocking = [r for r in rows if r["severity"] == "error" and r["status"] != "pass"]
        details = {
            "table": table,
            "checks": len(rows),
            "passed": sum(r["status"] == "pass" for r in rows),
            "failed": [r["check_name"] for r in blocking],
            "warnings": [r["check_name"] for r in rows if r["severity"] == "warn" and r["status"] != "pass"],
            "results": [
                {k: r[k] for k in ("check_name", "check_type", "severity", "status", "failed_rows", "message")}
                for r in rows
            ],
        }
        if blocking:
            summary = "; ".join(f"{r['check_name']} ({r['status']}: {r['message']})" for r in blocking)
            raise TerminalError(f"{len(blocking)} data-quality check(s) failed: {summary}")
        return StepResult(rows_in=total, rows_out=0, details=details)


SPEC = ProcessorSpec(
    ps_type="quality.check",
    summary="data-quality checks run as SQL inside the warehouse; results land in `{tenant}_metadata.dq_results`.",
    processor=QualityCheck(),
    validate=validate_step,
    # the optional `source` is left out: the editor schema marks every section listed here required
    config_models={"config": QualitySettings},
)
