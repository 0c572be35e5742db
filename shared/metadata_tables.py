"""Run history in the warehouse: `{tenant}_metadata.pipeline_executions` and `step_executions` (one row per attempt).

Written once per run when it ends (batched: the hot path of a stage hop never touches the warehouse for metadata).
Append-only, idempotent by key (`Warehouse.append_rows`): on BigQuery a streaming insert whose insertIds are the rows'
keys, so one write per run costs no load job (1,500 per table per day) and a redelivered finalisation within
BigQuery's dedup window adds nothing; DuckDB skips a known key exactly. Rows are never deleted or updated (BigQuery
refuses DML on rows still in the streaming buffer), so a row written twice beyond the window, or a run finalised
again with another outcome, leaves two rows: readers take the latest per key, as the `*_latest` views do
(`latest_sql`).

The dataset and its tables are provisioned at onboarding (shared/tenancy/provisioning.py, with an identity that may
create datasets); the runtime only checks the dataset (`require_dataset`) and creates missing tables in it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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

ALL_TABLES = {**TABLES, "dq_results": DQ_RESULTS}


@dataclass(frozen=True)
class RowKey:
    """What makes a history row unique (its insertId / the key `append_rows` skips), and which rows readers keep."""

    identity: tuple[str, ...]
    """Columns naming the thing a row describes: readers keep one row per identity."""
    latest_by: str
    """The newest row of an identity has the largest value here."""
    version: tuple[str, ...]
    """Columns that change when a thing is recorded again with another outcome: part of the write key, so such a
    row is added (and wins on read) instead of being dropped as a repeat."""

    @property
    def write_key(self) -> tuple[str, ...]:
        return (*self.identity, *self.version)


KEYS = {
    "pipeline_executions": RowKey(("run_id",), "end_time", ("status", "end_time")),
    "step_executions": RowKey(("run_id", "step_id", "attempt"), "end_time", ("status", "end_time")),
    "dq_results": RowKey(("run_id", "step_id", "check_name"), "checked_at", ("checked_at",)),
}


def latest_sql(table: str, where: str = "TRUE") -> str:
    """GoogleSQL for the rows of `{dataset}.{name}` that readers keep: the latest per identity (module docstring).
    `where` filters the table first (it may use @parameters)."""
    key = KEYS[table.rsplit(".", 1)[-1]]
    return (
        f"SELECT * EXCEPT (_cdp_rank) FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {', '.join(key.identity)} "
        f"ORDER BY {key.latest_by} DESC) AS _cdp_rank FROM {table} WHERE {where}) WHERE _cdp_rank = 1"
    )


def metadata_dataset(tenant_id: str) -> str:
    return f"{tenant_id}_metadata"


def create_metadata_tables(warehouse: Warehouse, tenant_id: str) -> None:
    """The history tables and their `*_latest` views, in a dataset that exists (each call idempotent)."""
    dataset = metadata_dataset(tenant_id)
    for name, schema in ALL_TABLES.items():
        warehouse.create_table(
            f"{dataset}.{name}", schema, partition_field="execution_date", cluster_by=("pipeline_id", "status")
        )
        warehouse.execute(f"CREATE VIEW IF NOT EXISTS {dataset}.{name}_latest AS {latest_sql(f'{dataset}.{name}')}")


def ensure_metadata_tables(ctx: Context, tenant_id: str) -> None:
    """Runtime: check the provisioned dataset (never create it) and create missing tables, once per process."""
    ensured = ctx.caches.metadata_tables
    if tenant_id in ensured:
        return
    warehouse = ctx.warehouse_for(tenant_id)
    warehouse.require_dataset(metadata_dataset(tenant_id))
    create_metadata_tables(warehouse, tenant_id)
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
    """Append the run's row and its attempts' rows; a repeated finalisation adds nothing (module docstring)."""
    tenant_id = str(run["tenant_id"])
    ensure_metadata_tables(ctx, tenant_id)
    dataset = metadata_dataset(tenant_id)
    rows = {"pipeline_executions": [run_row(run)], "step_executions": step_rows(run, stages)}
    warehouse = ctx.warehouse_for(tenant_id)
    for name, schema in TABLES.items():
        if rows[name]:
            data = pa.Table.from_pylist(rows[name], schema=schema)
            warehouse.append_rows(f"{dataset}.{name}", data, KEYS[name].write_key)


def record_dq_results(
    warehouse: Warehouse, tenant_id: str, run_id: str, step_id: str, rows: list[dict[str, Any]]
) -> None:
    """Append this step's check results (`rows` all of `run_id`'s `step_id`): a retried step appends newer ones and
    readers keep the latest per check (`read_dq_results`).

    Takes the warehouse (not the Context) because processors only get a StepContext."""
    dataset = metadata_dataset(tenant_id)
    table = f"{dataset}.dq_results"
    warehouse.require_dataset(dataset)
    warehouse.create_table(table, DQ_RESULTS, partition_field="execution_date", cluster_by=("pipeline_id", "status"))
    if rows:
        data = pa.Table.from_pylist(rows, schema=DQ_RESULTS)
        warehouse.append_rows(table, data, KEYS["dq_results"].write_key)


def read_dq_results(warehouse: Warehouse, tenant_id: str, run_id: str, columns: str) -> list[dict[str, Any]]:
    """The latest result of each check of the run (`columns` of dq_results), by step and check; [] without a table."""
    table = f"{metadata_dataset(tenant_id)}.dq_results"
    if not warehouse.table_exists(table):
        return []
    sql = f"SELECT {columns} FROM ({latest_sql(table, 'run_id = @run_id')}) ORDER BY step_id, check_name"
    rows: list[dict[str, Any]] = warehouse.query(sql, {"run_id": run_id}).to_pylist()
    return rows
