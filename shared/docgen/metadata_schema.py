"""docs/metadata-schema.md from the table definitions in shared/metadata_tables.py (names, types, partitioning).

The schemas carry no column descriptions, so they are kept here, next to the renderer; `render()` refuses a column
without one and a description of a column that no longer exists, so the two cannot drift apart silently.
"""

from __future__ import annotations

from typing import get_args

import pyarrow as pa

from shared import metadata_tables as metadata
from shared.contracts.messages import TriggerType

PARTITION = "execution_date"
CLUSTER = ("pipeline_id", "status")
_COMMON = {
    "run_id": "The run (`GET .../metadata/executions/{run_id}`).",
    "tenant_id": "The tenant; every table lives in that tenant's own `{tenant}_metadata` dataset.",
    "pipeline_id": "The pipeline (file name under tenant_configs/{tenant}/pipelines/).",
    "status": "Final status.",
    "error": "The error that ended it (host paths and engine hints scrubbed, shared/error_text.py).",
    "execution_date": "The run's date (UTC, or the backfill date): the partition column.",
    "start_time": "When it started (UTC).",
    "end_time": "When it ended (UTC).",
    "duration_ms": "end_time - start_time in milliseconds.",
    "step_id": "The step of the pipeline.",
}
COLUMNS: dict[str, dict[str, str]] = {
    "pipeline_executions": _COMMON
    | {
        "trigger_type": f"What started it: {', '.join(get_args(TriggerType))}.",
        "user_id": "X-User-ID of the request that started it (audit only).",
        "parameters": "The run's parameters as JSON (sorted keys).",
        "status": "SUCCEEDED, FAILED, TIMED_OUT or CANCELLED.",
    },
    "step_executions": _COMMON
    | {
        "ps_type": "The processor (bigquery.query, file.load, ...).",
        "attempt": "Attempt number; 0 for a step skipped or cancelled before any attempt.",
        "status": "The attempt's status (SUCCEEDED, FAILED, TIMED_OUT, CANCELLED, SKIPPED, or QUEUED when retried).",
        "rows_in": "Rows the step read, when the processor reports it.",
        "rows_out": "Rows the step wrote.",
        "bytes_processed": "Bytes the warehouse processed for the step, when it reports it.",
    },
    "dq_results": _COMMON
    | {
        "check_name": "The check's name in the quality.check step.",
        "check_type": "The rule (not_null, unique, row_count, ...).",
        "severity": "error or warn: a failed `error` check fails the step, a `warn` one is reported.",
        "status": "pass, fail or error.",
        "table_name": "The table checked.",
        "column_name": "The column checked, when the rule is about one.",
        "failed_rows": "Rows that broke the rule.",
        "total_rows": "Rows looked at.",
        "observed": "What was measured, as text.",
        "expected": "What the rule wanted, as text.",
        "message": "A sentence a person can act on.",
        "checked_at": "When the check ran (UTC).",
    },
}
WRITERS = {
    "pipeline_executions": "one row per run, written when the run ends (shared/metadata_tables.py record_run)",
    "step_executions": "one row per attempt of every step, written with the run's row",
    "dq_results": "one row per check per quality.check step run (record_dq_results; a retry appends newer rows)",
}


def tables() -> dict[str, pa.Schema]:
    return {**metadata.TABLES, "dq_results": metadata.DQ_RESULTS}


def _bigquery_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_string(arrow_type):
        return "STRING"
    if pa.types.is_integer(arrow_type):
        return "INT64"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP"
    if pa.types.is_date(arrow_type):
        return "DATE"
    if pa.types.is_floating(arrow_type):
        return "FLOAT64"
    raise ValueError(f"no BigQuery type for {arrow_type}")


def render() -> str:
    lines = [
        "# Metadata schema",
        "",
        "Run history and data-quality results live in each tenant's own dataset `{tenant}_metadata` (BigQuery on GCP,",
        "the tenant's DuckDB file locally), written through the tenant's own warehouse identity. Every table is",
        f"partitioned by `{PARTITION}` (day) and clustered by {', '.join(f'`{c}`' for c in CLUSTER)}. Tables are",
        "append-only (BigQuery streaming inserts keyed by each row's identity: no load job per run, and a redone",
        "finalisation adds nothing within BigQuery's dedup window). A row written again later, or a run finalised",
        "again with another outcome, leaves an older row behind: query the `<table>_latest` view of each table",
        "(the latest row per run / attempt / check), as the API does (`.../quality`).",
    ]
    for name, schema in tables().items():
        described = COLUMNS[name]
        missing = [f.name for f in schema if f.name not in described]
        stale = sorted(set(described) - set(schema.names) - set(_COMMON))
        if missing or stale:
            raise ValueError(f"{name}: describe {missing} / drop descriptions of {stale} in shared/docgen")
        lines += ["", f"## `{{tenant}}_metadata.{name}`", "", WRITERS[name][0].upper() + WRITERS[name][1:] + ".", ""]
        lines += ["| column | type | nullable | meaning |", "|---|---|---|---|"]
        for f in schema:
            lines.append(
                f"| `{f.name}` | {_bigquery_type(f.type)} | {'yes' if f.nullable else 'no'} | {described[f.name]} |"
            )
    return "\n".join(lines) + "\n"
