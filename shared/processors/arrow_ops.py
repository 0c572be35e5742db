"""The operations of `arrow.transform`, each a stage over a stream of record batches.

Row-wise operations (select, drop, rename, cast, filter, derive) hold one batch at a time. `dedupe` remembers the keys
it has seen (memory grows with the number of distinct keys, not rows). `aggregate` keeps partial aggregates per group
and folds them again whenever they pile up (a two-level aggregate), so memory grows with the number of groups; the
result is emitted when the input ends and the operations after it run over the aggregated rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BeforeValidator, Field, field_validator, model_validator

from shared.errors import TerminalError
from shared.processors.expressions import ExpressionError, compile_expression, evaluate_to_array
from shared.processors.step_config import ColumnName, ColumnTypeName, StrictModel, arrow_type

Batches = Iterator[pa.RecordBatch]
AggKind = Literal["sum", "count", "count_all", "min", "max", "mean"]
_METRIC = re.compile(r"^\s*(sum|count|min|max|mean)\s*\(\s*(\*|[A-Za-z_][A-Za-z0-9_]*)?\s*\)\s*$")
_REFOLD_ROWS = 1_000_000
"""Fold the partial aggregates again once this many partial rows pile up."""


def _expression(text: str) -> str:
    try:
        compile_expression(text)
    except ExpressionError as exc:
        raise ValueError(str(exc)) from exc
    return text


def _keys_shorthand(value: Any) -> Any:
    return {"keys": value} if isinstance(value, list) else value


ExpressionText = Annotated[str, BeforeValidator(lambda v: v if isinstance(v, str) else str(v))]


class DedupeSpec(StrictModel):
    keys: list[ColumnName] = Field(min_length=1, description="Rows with equal keys are duplicates; the first is kept.")


class AggregateSpec(StrictModel):
    group_by: list[ColumnName] = Field(default_factory=list)
    metrics: dict[ColumnName, str] = Field(
        min_length=1, description="output column -> sum(col) | count() | count(col) | min(col) | max(col) | mean(col)"
    )

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            parse_metric(name, text)
        return value


class Operation(StrictModel):
    """One operation; exactly one of its keys is set, e.g. `- filter: "cost > 0"`."""

    select: list[ColumnName] | None = Field(default=None, description="Keep these columns, in this order.")
    drop: list[ColumnName] | None = None
    rename: dict[ColumnName, ColumnName] | None = Field(default=None, description="old name -> new name")
    cast: dict[ColumnName, ColumnTypeName] | None = Field(default=None, description="column -> type (FLOAT64 ...)")
    filter: ExpressionText | None = Field(default=None, description="Keep rows where this expression is true.")
    derive: dict[ColumnName, ExpressionText] | None = Field(default=None, description="new column -> expression")
    dedupe: Annotated[DedupeSpec | None, BeforeValidator(_keys_shorthand)] = None
    aggregate: AggregateSpec | None = None

    @field_validator("filter")
    @classmethod
    def _filter(cls, value: str | None) -> str | None:
        return None if value is None else _expression(value)

    @field_validator("derive")
    @classmethod
    def _derive(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for text in (value or {}).values():
            _expression(text)
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Operation:
        kinds = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(kinds) != 1:
            raise ValueError(f"each operation is exactly one of {', '.join(type(self).model_fields)}; got {kinds}")
        return self

    @property
    def kind(self) -> str:
        return next(name for name in type(self).model_fields if getattr(self, name) is not None)


@dataclass
class OpStats:
    op: str
    rows_out: int = 0


@dataclass
class Pipeline:
    """The operations chained over a source stream; `stats` fill in as the stream is consumed."""

    operations: list[Operation]
    batch_rows: int = 65_536
    stats: list[OpStats] = field(default_factory=list)

    def apply(self, source: Batches) -> Batches:
        stream = source
        for op in self.operations:
            stats = OpStats(op.kind)
            self.stats.append(stats)
            stream = _counted(_STAGES[op.kind](op, stream, self.batch_rows), stats)
        return stream


def _counted(stream: Batches, stats: OpStats) -> Batches:
    for batch in stream:
        stats.rows_out += batch.num_rows
        yield batch


def _column_index(batch: pa.RecordBatch, name: str) -> int:
    index = int(batch.schema.get_field_index(name))
    if index < 0:
        raise KeyError(f"no column {name!r} (columns: {', '.join(batch.schema.names)})")
    return index


RowFn = Callable[[pa.RecordBatch], pa.RecordBatch]


def _rowwise_stage(op: Operation, stream: Batches, batch_rows: int) -> Batches:
    apply = _rowwise_fn(op)
    for batch in stream:
        try:
            yield apply(batch)
        except KeyError as exc:
            raise TerminalError(f"{op.kind}: {exc.args[0] if exc.args else exc}") from exc


def _rowwise_fn(op: Operation) -> RowFn:
    """The batch -> batch function of a row-wise operation, with its expressions compiled once."""
    if op.select is not None:
        selected = op.select
        return lambda b: b.select([_column_index(b, c) for c in selected]).rename_columns(selected)
    if op.drop is not None:
        dropped = op.drop
        return lambda b: b.drop_columns([b.schema.names[_column_index(b, c)] for c in dropped])
    if op.rename is not None:
        mapping = op.rename

        def rename(b: pa.RecordBatch) -> pa.RecordBatch:
            for name in mapping:
                _column_index(b, name)
            return b.rename_columns([mapping.get(n, n) for n in b.schema.names])

        return rename
    if op.cast is not None:
        targets = {name: (type_name, arrow_type(type_name)) for name, type_name in op.cast.items()}

        def cast(b: pa.RecordBatch) -> pa.RecordBatch:
            for name, (type_name, target) in targets.items():
                index = _column_index(b, name)
                try:
                    column = pc.cast(b.column(index), target)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise TerminalError(f"cast: column {name!r} to {type_name}: {exc}") from exc
                b = b.set_column(index, pa.field(name, target), column)
            return b

        return cast
    if op.filter is not None:
        condition = compile_expression(op.filter)

        def keep(b: pa.RecordBatch) -> pa.RecordBatch:
            mask = evaluate_to_array(condition, b)
            if not pa.types.is_boolean(mask.type):
                raise TerminalError(f"filter {condition.text!r} must be true/false, but gives {mask.type}")
            return b.filter(mask)

        return keep
    assert op.derive is not None
    derived = [(name, compile_expression(text)) for name, text in op.derive.items()]

    def derive(b: pa.RecordBatch) -> pa.RecordBatch:
        for name, expr in derived:  # in order: a later column may use an earlier one
            values = evaluate_to_array(expr, b)
            index = b.schema.get_field_index(name)
            if index >= 0:
                b = b.set_column(index, pa.field(name, values.type), values)
            else:
                b = b.append_column(pa.field(name, values.type), values)
        return b

    return derive


# -- dedupe ------------------------------------------------------------------------------------------------------


def _dedupe_stage(op: Operation, stream: Batches, batch_rows: int) -> Batches:
    """Keep the first row of every key, in input order. Within a batch the first occurrences are found with a
    vectorised group-by; only those (not every row) are checked against the keys seen in earlier batches."""
    assert op.dedupe is not None
    keys = op.dedupe.keys
    seen: set[tuple[Any, ...]] = set()
    for batch in stream:
        try:
            key_columns = [batch.column(_column_index(batch, k)) for k in keys]
        except KeyError as exc:
            raise TerminalError(f"dedupe: {exc.args[0]}") from exc
        names = [f"__k{i}" for i in range(len(keys))]
        table = pa.table([*key_columns, pa.array(range(batch.num_rows), pa.int64())], names=[*names, "__row"])
        try:
            firsts = table.group_by(names, use_threads=False).aggregate([("__row", "min")])
        except (pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise TerminalError(f"dedupe: cannot use {', '.join(keys)} as keys: {exc}") from exc
        tuples = zip(*(firsts.column(n).to_pylist() for n in names), strict=True)
        rows = firsts.column("__row_min").to_pylist()
        keep = []
        for key, row in zip(tuples, rows, strict=True):
            if key not in seen:
                seen.add(key)
                keep.append(row)
        keep.sort()
        yield batch.take(pa.array(keep, pa.int64()))


# -- aggregate ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    output: str
    kind: AggKind
    column: str | None


def parse_metric(output: str, text: str) -> Metric:
    match = _METRIC.match(text)
    if not match:
        raise ValueError(
            f"metric {output}: {text!r} is not sum(col), count(), count(col), min(col), max(col) or mean(col)"
        )
    func, arg = match.group(1), match.group(2)
    if func == "count" and arg in (None, "*"):
        return Metric(output, "count_all", None)
    if arg in (None, "*"):
        raise ValueError(f"metric {output}: {func}() needs a column")
    return Metric(output, func, arg)  # type: ignore[arg-type]


# partial kind per metric kind, and how partials fold together again
_PARTIALS: dict[str, list[str]] = {
    "sum": ["sum"],
    "count": ["count"],
    "count_all": ["count_all"],
    "min": ["min"],
    "max": ["max"],
    "mean": ["sum", "count"],
}
_FOLD = {"sum": "sum", "count": "sum", "count_all": "sum", "min": "min", "max": "max"}


def _aggregate_stage(op: Operation, stream: Batches, batch_rows: int) -> Batches:
    assert op.aggregate is not None
    group_by = op.aggregate.group_by
    metrics = [parse_metric(name, text) for name, text in op.aggregate.metrics.items()]
    partials: list[pa.Table] = []
    pending = 0
    saw_input = False
    for batch in stream:
        saw_input = True
        partial = _partial(batch, group_by, metrics)
        partials.append(partial)
        pending += partial.num_rows
        if pending >= _REFOLD_ROWS:
            partials = [_fold(partials, group_by, metrics)]
            pending = partials[0].num_rows
    if not saw_input:
        return
    result = _finish(_fold(partials, group_by, metrics), group_by, metrics)
    yield from result.to_batches(max_chunksize=batch_rows) or [pa.RecordBatch.from_pylist([], schema=result.schema)]


def _partial_name(i: int, kind: str) -> str:
    return f"__p{i}_{kind}"


def _partial(batch: pa.RecordBatch, group_by: list[str], metrics: list[Metric]) -> pa.Table:
    try:
        columns = {f"__g{j}": batch.column(_column_index(batch, g)) for j, g in enumerate(group_by)}
        for i, m in enumerate(metrics):
            if m.column is not None:
                columns[f"__m{i}"] = batch.column(_column_index(batch, m.column))
    except KeyError as exc:
        raise TerminalError(f"aggregate: {exc.args[0]}") from exc
    table = pa.table(columns) if columns else pa.table({"__n": pa.nulls(batch.num_rows, pa.int8())})
    aggs: list[tuple[Any, str]] = []
    names: list[str] = []
    for i, m in enumerate(metrics):
        for kind in _PARTIALS[m.kind]:
            aggs.append(([], "count_all") if kind == "count_all" else (f"__m{i}", kind))
            names.append(_partial_name(i, kind))
    keys = [f"__g{j}" for j in range(len(group_by))]
    try:
        out = table.group_by(keys, use_threads=False).aggregate(aggs)
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError, pa.ArrowInvalid) as exc:
        raise TerminalError(f"aggregate: {exc}") from exc
    # pyarrow names outputs `<col>_<kind>` (count_all: `count_all`); put them in our order under our names.
    produced = [f"{c}_{k}" if k != "count_all" else "count_all" for c, k in aggs]
    return pa.table([out.column(k) for k in keys] + [out.column(p) for p in produced], names=[*keys, *names])


def _fold(partials: list[pa.Table], group_by: list[str], metrics: list[Metric]) -> pa.Table:
    table = pa.concat_tables(partials)
    keys = [f"__g{j}" for j in range(len(group_by))]
    aggs: list[tuple[str, str]] = []
    names: list[str] = []
    for i, m in enumerate(metrics):
        for kind in _PARTIALS[m.kind]:
            aggs.append((_partial_name(i, kind), _FOLD[kind]))
            names.append(_partial_name(i, kind))
    source = table if keys else table.append_column("__n", pa.nulls(table.num_rows, pa.int8()))
    out = source.group_by(keys, use_threads=False).aggregate(aggs)
    return pa.table([out.column(k) for k in keys] + [out.column(f"{c}_{k}") for c, k in aggs], names=[*keys, *names])


def _finish(folded: pa.Table, group_by: list[str], metrics: list[Metric]) -> pa.Table:
    columns: dict[str, Any] = {g: folded.column(f"__g{j}") for j, g in enumerate(group_by)}
    for i, m in enumerate(metrics):
        if m.kind == "mean":
            total = pc.cast(folded.column(_partial_name(i, "sum")), pa.float64())
            count = folded.column(_partial_name(i, "count"))
            columns[m.output] = pc.if_else(pc.equal(count, 0), pa.scalar(None, pa.float64()), pc.divide(total, count))
        else:
            columns[m.output] = folded.column(_partial_name(i, _PARTIALS[m.kind][0]))
    return pa.table(columns)


_STAGES: dict[str, Callable[[Operation, Batches, int], Batches]] = {
    "select": _rowwise_stage,
    "drop": _rowwise_stage,
    "rename": _rowwise_stage,
    "cast": _rowwise_stage,
    "filter": _rowwise_stage,
    "derive": _rowwise_stage,
    "dedupe": _dedupe_stage,
    "aggregate": _aggregate_stage,
}
