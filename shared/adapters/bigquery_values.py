"""Python values and arrow schemas as BigQuery sees them: query parameters, table schemas, result type names, names.

Kept apart from the adapter (shared/adapters/bigquery_warehouse.py) so that module stays about the API calls.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from shared.errors import TerminalError

if TYPE_CHECKING:
    from google.cloud import bigquery


def scalar_type(value: Any) -> str:
    """GoogleSQL type of a Python value. Order matters: bool is an int, datetime is a date."""
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, Decimal):
        return "NUMERIC"
    if isinstance(value, str):
        return "STRING"
    if isinstance(value, bytes):
        return "BYTES"
    if isinstance(value, datetime):
        return "TIMESTAMP"
    if isinstance(value, date):
        return "DATE"
    if isinstance(value, time):
        return "TIME"
    raise TerminalError(f"unsupported query parameter type {type(value).__name__}")


def scalar_value(value: Any) -> Any:
    """Naive datetimes are UTC, as BigQuery reads a TIMESTAMP without an offset (and as the DuckDB adapter does)."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def parameter(bq: Any, name: str, value: Any) -> Any:
    """A named query parameter; a list/tuple becomes an ARRAY typed by its first non-null element (STRING if none)."""
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        first = next((v for v in items if v is not None), None)
        kind = "STRING" if first is None else scalar_type(first)
        return bq.ArrayQueryParameter(name, kind, [scalar_value(v) for v in items])
    kind = "STRING" if value is None else scalar_type(value)
    return bq.ScalarQueryParameter(name, kind, scalar_value(value))


_STANDARD_NAMES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "RECORD": "STRUCT"}
"""The API's legacy type names of a schema field, by their GoogleSQL names."""


def googlesql_type(field: Any) -> str:
    """A schema field's type as GoogleSQL names it (ARRAY<...> for a REPEATED field; STRUCT without its fields)."""
    kind = _STANDARD_NAMES.get(str(field.field_type), str(field.field_type))
    return f"ARRAY<{kind}>" if field.mode == "REPEATED" else kind


def to_bigquery_schema(schema: pa.Schema) -> list[bigquery.SchemaField]:
    """Arrow schema -> BigQuery schema: non-nullable fields are REQUIRED, list<T> is REPEATED T, struct is RECORD."""
    from google.cloud import bigquery

    return [_field(bigquery, f) for f in schema]


def _field(bq: Any, f: pa.Field) -> Any:
    t = f.type
    mode = "NULLABLE" if f.nullable else "REQUIRED"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = t.value_field
        if pa.types.is_list(inner.type) or pa.types.is_large_list(inner.type):
            raise TerminalError(f"column {f.name!r}: BigQuery has no ARRAY of ARRAY")
        element = _field(bq, pa.field(f.name, inner.type, nullable=True))
        return bq.SchemaField(f.name, element.field_type, mode="REPEATED", fields=element.fields)
    if pa.types.is_struct(t):
        return bq.SchemaField(f.name, "RECORD", mode=mode, fields=[_field(bq, t.field(i)) for i in range(t.num_fields)])
    return bq.SchemaField(f.name, _bq_type(f.name, t), mode=mode)


def _bq_type(name: str, t: pa.DataType) -> str:
    if isinstance(t, pa.JsonType):
        return "JSON"
    if pa.types.is_dictionary(t):
        return _bq_type(name, t.value_type)
    checks: list[tuple[Any, str]] = [
        (pa.types.is_boolean, "BOOL"),
        (pa.types.is_integer, "INT64"),
        (pa.types.is_floating, "FLOAT64"),
        (lambda x: pa.types.is_string(x) or pa.types.is_large_string(x) or pa.types.is_string_view(x), "STRING"),
        (lambda x: pa.types.is_binary(x) or pa.types.is_large_binary(x) or pa.types.is_fixed_size_binary(x), "BYTES"),
        (pa.types.is_date, "DATE"),
        (pa.types.is_time, "TIME"),
        (lambda x: pa.types.is_timestamp(x) and x.tz is not None, "TIMESTAMP"),
        (pa.types.is_timestamp, "DATETIME"),
        (lambda x: pa.types.is_decimal(x) and x.precision <= 38 and x.scale <= 9, "NUMERIC"),
        (pa.types.is_decimal, "BIGNUMERIC"),
    ]
    for check, bq_type in checks:
        if check(t):
            return bq_type
    raise TerminalError(f"column {name!r}: arrow type {t} has no BigQuery equivalent")


def row_id(table: str, key_columns: Sequence[str], row: Mapping[str, Any]) -> str:
    """insertId of a row: the table and the row's key, hashed (insertIds are at most 128 characters)."""
    key = json.dumps([table, *(row.get(c) for c in key_columns)], default=str, separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest()


def checked_name(part: str) -> str:
    if not part or not all(c.isalnum() or c in "_-" for c in part):
        raise TerminalError(f"invalid project/dataset/table name part {part!r}")
    return part
