"""Where a run's results are, and their first rows: the preview behind `cloudact runs show --preview`, the API's
`GET .../runs/{run_id}/stages/{stage_id}/preview` and the rows on the run page.

A stage that writes a table records it in its details (`details.table`, `{tenant}_{dataset}.{table}`: bigquery.query,
arrow.transform, file.load, http.extract). The preview reads that table as it is now, from the tenant's own
warehouse: a later run of the same pipeline may have replaced the rows (the response says which table it read and
how many rows it holds). The table name comes from the stage document, which only the platform writes, and is
checked again here to be a plain `{tenant}_<dataset>.<table>` before it reaches SQL.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from shared.contracts.states import StageStatus
from shared.errors import NotFound
from shared.pipelines.sql_tables import PLAIN_NAME
from shared.ports.state import Doc
from shared.ports.warehouse import Warehouse, WarehouseCatalog

MAX_PREVIEW_ROWS = 100
DEFAULT_PREVIEW_ROWS = 10


@dataclass(frozen=True)
class Preview:
    """The first rows of one stage's output table, JSON-ready."""

    stage_id: str
    table: str | None
    """`{tenant}_{dataset}.{table}`, or None when the stage writes no table."""
    exists: bool = False
    columns: list[dict[str, str]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    total_rows: int | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage_id": self.stage_id,
            "table": self.table,
            "exists": self.exists,
            "columns": self.columns,
            "rows": self.rows,
            "total_rows": self.total_rows,
            "note": self.note,
        }


def output_table(tenant_id: str, stage: Doc) -> str | None:
    """The table a stage wrote, from its details, if it is one of the tenant's own (`{tenant}_<dataset>.<table>`)."""
    details = stage.get("details")
    table = details.get("table") if isinstance(details, dict) else None
    if not isinstance(table, str):
        return None
    parts = table.split(".")
    if len(parts) != 2 or not all(PLAIN_NAME.match(p) for p in parts) or not parts[0].startswith(f"{tenant_id}_"):
        return None
    return table


def writes_a_table(spec: Doc, stage_id: str) -> bool:
    """Whether the run's spec gives the step a destination (quality.check's `details.table` is what it read)."""
    for step in spec.get("steps", []):
        if isinstance(step, dict) and step.get("step_id") == stage_id:
            return bool(step.get("destination"))
    return False


def stage_preview(
    warehouse_of: Callable[[], Warehouse], run: Doc, spec: Doc, stage: Doc, limit: int = DEFAULT_PREVIEW_ROWS
) -> Preview:
    """The first `limit` rows of the table the stage wrote (module docstring); `spec` is the run's pipeline snapshot
    (shared.runs.store.load_run_spec). `warehouse_of` is called only for a stage that wrote a table: no warehouse
    (nor, locally, the tenant's DuckDB file) is opened for the others."""
    stage_id = str(stage.get("stage_id") or "")
    table = output_table(str(run["tenant_id"]), stage) if writes_a_table(spec, stage_id) else None
    if table is None:
        return Preview(stage_id, None, note="this stage writes no table")
    warehouse = warehouse_of()
    if not warehouse.table_exists(table):
        return Preview(stage_id, table, note="the table no longer exists")
    limit = max(1, min(int(limit), MAX_PREVIEW_ROWS))
    # tabledata.list on BigQuery: `SELECT * ... LIMIT` would bill a scan of every column of the table
    data = warehouse.preview(table, limit) if isinstance(warehouse, WarehouseCatalog) else None
    if data is None:
        return Preview(stage_id, table, note="this warehouse cannot show rows")
    total = warehouse.query(f"SELECT COUNT(*) AS n FROM {table}").column("n")[0].as_py()
    columns = [{"name": f.name, "type": str(f.type)} for f in data.schema]
    rows = [{k: json_value(v) for k, v in row.items()} for row in data.to_pylist()]
    note = (
        None
        if stage.get("status") == StageStatus.SUCCEEDED
        else f"the stage is {stage.get('status')}: rows may be older"
    )
    return Preview(stage_id, table, True, columns, rows, int(total or 0), note)


def run_stage(stages: list[Doc], stage_id: str) -> Doc:
    for stage in stages:
        if stage.get("stage_id") == stage_id:
            return stage
    raise NotFound(f"the run has no stage {stage_id!r}", {"field": "stage_id"})


def json_value(value: Any) -> Any:
    """A warehouse value as JSON shows it: dates and times ISO 8601, decimals as text (no float rounding), bytes as
    base64, NaN/inf as text; lists and structs element by element."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return value
