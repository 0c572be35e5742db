"""`arrow.transform`: stream record batches from a tenant table (or a file) through pyarrow compute into a table.

source:      {dataset: billing, table: gcp_billing_export, columns: [..]}   a table in the tenant's own datasets
             or {path: exports/*.parquet, format: parquet}                   a file, as for file.load
destination: {dataset: billing, table: cost_line_items, write_mode: truncate | append}
config:
  batch_rows: 65536
  operations:                       applied in order; see arrow_ops for what each one keeps in memory
    - select: [a, b]                - drop: [c]                 - rename: {old: new}
    - cast: {cost: FLOAT64}         - filter: "cost > 0 and currency == 'USD'"
    - derive: {usage_date: "date(usage_start_time)", credits_total: "list_sum(credits.amount)"}
    - dedupe: [invoice_id]          (or {keys: [...]}: keeps the first row of each key)
    - aggregate: {group_by: [usage_date], metrics: {cost: "sum(cost)", rows: "count()"}}

Expressions are the small safe language of `expressions.py` (no eval). Table reads go through the warehouse's
`query_batches`, so a table of any size passes through one batch at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
from pydantic import Field, model_validator

from shared.pipelines.spec import StepIssue, StepSpec
from shared.pipelines.templating import ValidationScope
from shared.processors.arrow_ops import Operation, Pipeline
from shared.processors.base import StepContext, StepResult
from shared.processors.contract import ProcessorSpec
from shared.processors.file_sources import FileFormat, ReadOptions, infer_format, read_batches
from shared.processors.step_config import (
    ColumnName,
    Destination,
    Identifier,
    StrictModel,
    TableRef,
    check_deadline,
    parse_step,
    quote_column,
    render_path_template,
    step_issues,
)
from shared.processors.table_sink import TableSink


class TransformSource(StrictModel):
    dataset: Identifier | None = Field(default=None, description="Source table's dataset (without tenant prefix).")
    table: Identifier | None = None
    columns: list[ColumnName] | None = Field(default=None, description="Read only these columns (default: all).")
    path: str | None = Field(default=None, description="A file instead of a table (same rules as file.load).")
    format: FileFormat | None = None

    @model_validator(mode="after")
    def _table_or_file(self) -> TransformSource:
        has_table = self.dataset is not None or self.table is not None
        if has_table == (self.path is not None):
            raise ValueError("set either dataset + table (a tenant table) or path (a file), not both or neither")
        if has_table and (self.dataset is None or self.table is None):
            raise ValueError("a table source needs both dataset and table")
        return self


class TransformSettings(StrictModel):
    operations: list[Operation] = Field(min_length=1)
    batch_rows: int = Field(default=65_536, ge=1, le=1_000_000)


class ArrowTransformStep(StrictModel):
    source: TransformSource
    destination: Destination
    config: TransformSettings

    @model_validator(mode="after")
    def _not_in_place(self) -> ArrowTransformStep:
        src, dst = self.source, self.destination
        if src.dataset == dst.dataset and src.table == dst.table:
            raise ValueError("the destination may not be the source table (write to a new table)")
        return self


def validate_step(step: StepSpec, scope: ValidationScope) -> list[StepIssue]:
    return step_issues(ArrowTransformStep, step)


def _source_batches(cfg: ArrowTransformStep, ctx: StepContext) -> tuple[Iterator[pa.RecordBatch], str]:
    src = cfg.source
    batch_rows = cfg.config.batch_rows
    if src.path is not None:
        location = render_path_template(src.path, ctx)
        fmt = src.format or infer_format(location)
        return read_batches(location, ctx, ReadOptions(fmt, batch_rows=batch_rows)), location
    assert src.dataset is not None and src.table is not None
    table = TableRef(dataset=src.dataset, table=src.table).qualified(ctx)
    columns = ", ".join(quote_column(c) for c in src.columns) if src.columns else "*"
    sql = f"SELECT {columns} FROM {table}"
    return _never_empty(ctx, sql, ctx.warehouse.query_batches(sql, batch_rows=batch_rows)), table


def _never_empty(ctx: StepContext, sql: str, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """An empty table still has columns: yield one empty batch so the operations (and the destination) get them."""
    empty = True
    for batch in batches:
        empty = False
        yield batch
    if empty:
        typed = ctx.warehouse.query(f"{sql} LIMIT 0")
        yield pa.RecordBatch.from_pylist([], schema=typed.schema)


def _counted(batches: Iterator[pa.RecordBatch], counter: list[int]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        counter[0] += batch.num_rows
        yield batch


class ArrowTransform:
    def run(self, step: StepSpec, ctx: StepContext) -> StepResult:
        cfg = parse_step(ArrowTransformStep, step)
        source, source_name = _source_batches(cfg, ctx)
        rows_in = [0]
        pipeline = Pipeline(cfg.config.operations, batch_rows=cfg.config.batch_rows)
        table = cfg.destination.qualified(ctx)
        ctx.warehouse.require_dataset(ctx.dataset(cfg.destination.dataset))
        sink = TableSink(ctx.warehouse, table, cfg.destination.write_mode, ctx.run_id, step.step_id)
        try:
            for batch in pipeline.apply(_counted(source, rows_in)):
                check_deadline(ctx, step)
                sink.write(batch)
            rows_out = sink.commit()
        except BaseException:
            sink.abort()
            raise
        operations: list[dict[str, Any]] = []
        previous = rows_in[0]
        for stats in pipeline.stats:
            operations.append({"op": stats.op, "rows_in": previous, "rows_out": stats.rows_out})
            previous = stats.rows_out
        details = {
            "source": source_name,
            "table": table,
            "write_mode": cfg.destination.write_mode,
            "operations": operations,
        }
        return StepResult(rows_in=rows_in[0], rows_out=rows_out, bytes_processed=sink.bytes_written, details=details)


SPEC = ProcessorSpec(
    ps_type="arrow.transform",
    summary="stream record batches from a tenant table (or a file) through pyarrow compute into a table.",
    processor=ArrowTransform(),
    validate=validate_step,
    config_models={"source": TransformSource, "destination": Destination, "config": TransformSettings},
)
