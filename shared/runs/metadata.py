"""Run history in the warehouse: `{tenant}_metadata.pipeline_executions` and `step_executions` (one row per attempt).

Written once per run when it ends (batched: the hot path of a stage hop never touches the warehouse for metadata).
Idempotent: the run's rows are deleted and re-inserted, so a redelivered finalisation never duplicates them.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import pyarrow as pa

from shared.ports.warehouse import Warehouse
from shared.runtime.context import Context

PIPELINE_EXECUTIONS = pa.schema(
    [
        ("run_id", pa.string()),
        ("tenant_id", pa.string()),
        ("pipeline_id", pa.string()),
        ("trigger_type", pa.string()),
        ("user_id", pa.string()),
        ("parameters", pa.string()),
        ("status", pa.string()),
        ("start_time", pa.timestamp("us", tz="UTC")),
        ("end_time", pa.timestamp("us", tz="UTC")),
        ("duration_ms", pa.int64()),
        ("error", pa.string()),
        ("execution_date", pa.date32()),
    ]
)

STEP_EXECUTIONS = pa.schema(
    [
        ("run_id", pa.string()),
        ("tenant_id", pa.string()),
        ("pipeline_id", pa.string()),
        ("step_id", pa.string()),
        ("ps_type", pa.string()),
        ("attempt", pa.int64()),
        ("status", pa.string()),
        ("rows_in", pa.int64()),
        ("rows_out", pa.int64()),
        ("bytes_processed", pa.int64()),
        ("start_time", pa.timestamp("us", tz="UTC")),
        ("end_time", pa.timestamp("us", tz="UTC")),
        ("duration_ms", pa.int64()),
        ("error", pa.string()),
        ("execution_date", pa.date32()),
    ]
)

TABLES = {"pipeline_executions": PIPELINE_EXECUTIONS, "step_executions": STEP_EXECUTIONS}

DQ_RESULTS = pa.schema(
    [
        ("run_id", pa.string()),
        ("tenant_id", pa.string()),
        ("pipeline_id", pa.string()),
        ("step_id", pa.string()),
        ("check_name", pa.string()),
        ("check_type", pa.string()),
        ("severity", pa.string()),
        ("status", pa.string()),
        ("table_name", pa.string()),
        ("column_name", pa.string()),
        ("failed_rows", pa.int64()),
        ("total_rows", pa.int64()),
        ("observed", pa.string()),
        ("expected", pa.string()),
        ("message", pa.string()),
        ("checked_at", pa.timestamp("us", tz="UTC")),
        ("execution_date", pa.date32()),
    ]
)
"""One row per data-quality check per step run (quality.check); status is pass | fail | error."""


def metadata_dataset(tenant_id: str) -> str:
    return f"{tenant_id}_metadata"


def ensure_metadata_tables(ctx: Context, tenant_id: str) -> None:
    ensured: set[str] = ctx.extras.setdefault("metadata_tables", set())
    if tenant_id in ensured:
        return
    dataset = metadata_dataset(tenant_id)
    warehouse = ctx.warehouse_for(tenant_id)
    warehouse.ensure_dataset(dataset)
    for name, schema in TABLES.items():
        warehouse.create_table(
            f"{dataset}.{name}", schema, partition_field="execution_date", cluster_by=("pipeline_id", "status")
        )
    ensured.add(tenant_id)


def _ts(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _ms(start: datetime | None, end: datetime | None) -> int | None:
    return int((end - start).total_seconds() * 1000) if start and end else None


def run_row(run: dict[str, Any]) -> dict[str, Any]:
    trigger = run.get("trigger") or {}
    start = _ts(run.get("started_at")) or _ts(run.get("created_at"))
    return {
        "run_id": run["run_id"],
        "tenant_id": run["tenant_id"],
        "pipeline_id": run["pipeline_id"],
        "trigger_type": trigger.get("type"),
        "user_id": trigger.get("user_id"),
        "parameters": json.dumps(run.get("parameters") or {}, sort_keys=True, default=str),
        "status": run["status"],
        "start_time": start,
        "end_time": _ts(run.get("ended_at")),
        "duration_ms": run.get("duration_ms"),
        "error": run.get("error"),
        "execution_date": date.fromisoformat(str(run["run_date"])),
    }


def step_rows(run: dict[str, Any], stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    day = date.fromisoformat(str(run["run_date"]))
    for stage in stages:
        attempts = stage.get("attempts") or []
        if not attempts:  # skipped / cancelled before any attempt: one row records that
            attempts = [{"attempt": 0, "status": stage["status"], "error": stage.get("error")}]
        for a in attempts:
            start, end = _ts(a.get("started_at")), _ts(a.get("ended_at"))
            rows.append(
                {
                    "run_id": run["run_id"],
                    "tenant_id": run["tenant_id"],
                    "pipeline_id": run["pipeline_id"],
                    "step_id": stage["stage_id"],
                    "ps_type": stage.get("ps_type"),
                    "attempt": a.get("attempt"),
                    "status": a.get("status"),
                    "rows_in": a.get("rows_in"),
                    "rows_out": a.get("rows_out"),
                    "bytes_processed": a.get("bytes_processed"),
                    "start_time": start,
                    "end_time": end,
                    "duration_ms": _ms(start, end),
                    "error": a.get("error"),
                    "execution_date": day,
                }
            )
    return rows


def record_run(ctx: Context, run: dict[str, Any], stages: list[dict[str, Any]]) -> None:
    tenant_id = str(run["tenant_id"])
    ensure_metadata_tables(ctx, tenant_id)
    dataset = metadata_dataset(tenant_id)
    rows = {"pipeline_executions": [run_row(run)], "step_executions": step_rows(run, stages)}
    warehouse = ctx.warehouse_for(tenant_id)
    for name, schema in TABLES.items():
        table = f"{dataset}.{name}"
        warehouse.execute(f"DELETE FROM {table} WHERE run_id = @run_id", {"run_id": run["run_id"]})
        if rows[name]:
            warehouse.write_table(table, pa.Table.from_pylist(rows[name], schema=schema), "append")


def record_dq_results(
    warehouse: Warehouse, tenant_id: str, run_id: str, step_id: str, rows: list[dict[str, Any]]
) -> None:
    """Replace this run's results for this step: a retried or redelivered step never leaves two rows per check.

    Takes the warehouse (not the Context) because processors only get a StepContext."""
    dataset = metadata_dataset(tenant_id)
    table = f"{dataset}.dq_results"
    warehouse.ensure_dataset(dataset)
    warehouse.create_table(table, DQ_RESULTS, partition_field="execution_date", cluster_by=("pipeline_id", "status"))
    warehouse.execute(
        f"DELETE FROM {table} WHERE run_id = @run_id AND step_id = @step_id", {"run_id": run_id, "step_id": step_id}
    )
    if rows:
        warehouse.write_table(table, pa.Table.from_pylist(rows, schema=DQ_RESULTS), "append")
