"""Write a stream of record batches as parquet, newline-delimited JSON or CSV, one batch in memory at a time.

Parquet and NDJSON keep nested records and repeated fields as they are (NDJSON timestamps are RFC 3339 in UTC, the
form BigQuery and pyarrow both read). CSV cannot nest, so records are flattened to `service_id`-style columns and
repeated fields (labels, credits) are written as JSON text.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

SampleFormat = Literal["parquet", "ndjson", "csv"]


@dataclass(frozen=True)
class WrittenFile:
    path: Path
    rows: int
    bytes: int


def write_batches(path: Path, schema: pa.Schema, batches: Iterable[pa.RecordBatch], fmt: SampleFormat) -> WrittenFile:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")  # a reader never sees half a file
    rows = 0
    if fmt == "parquet":
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for batch in batches:
                writer.write_batch(batch)
                rows += batch.num_rows
    elif fmt == "ndjson":
        with tmp.open("w", encoding="utf-8") as out:
            for batch in batches:
                for row in batch.to_pylist():
                    out.write(json.dumps(row, default=_json_value, separators=(",", ":")))
                    out.write("\n")
                rows += batch.num_rows
    elif fmt == "csv":
        csv_writer: pcsv.CSVWriter | None = None
        try:
            for batch in batches:
                flat = flatten_for_csv(batch)
                if csv_writer is None:
                    csv_writer = pcsv.CSVWriter(str(tmp), flat.schema)
                csv_writer.write_batch(flat)
                rows += batch.num_rows
        finally:
            if csv_writer is not None:
                csv_writer.close()
        if csv_writer is None:
            tmp.write_text("")
    else:
        raise ValueError(f"unknown format {fmt!r}: parquet, ndjson or csv")
    tmp.replace(path)
    return WrittenFile(path, rows, path.stat().st_size)


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):  # whole seconds without a fraction: the form pyarrow infers as a timestamp
        utc = value.astimezone(dt.UTC)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if utc.microsecond else "%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def flatten_for_csv(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Records become `parent_child` columns (recursively); lists become JSON text."""
    names: list[str] = []
    arrays: list[pa.Array] = []

    def add(name: str, array: pa.Array) -> None:
        if pa.types.is_struct(array.type):
            for i in range(array.type.num_fields):
                child = array.type.field(i)
                add(f"{name}_{child.name}", array.field(i) if array.null_count == 0 else _struct_child(array, i))
        elif pa.types.is_list(array.type):
            text = [None if v is None else json.dumps(v, default=_json_value) for v in array.to_pylist()]
            names.append(name)
            arrays.append(pa.array(text, pa.string()))
        else:
            names.append(name)
            arrays.append(array)

    for i, field in enumerate(batch.schema):
        add(field.name, batch.column(i))
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _struct_child(array: pa.StructArray, i: int) -> pa.Array:
    """A child of a struct array with the parent's nulls applied (StructArray.field ignores them)."""
    import pyarrow.compute as pc

    return pc.struct_field(array, [i])
