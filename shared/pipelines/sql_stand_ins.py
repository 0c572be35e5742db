"""Stand-ins for tables that do not exist yet, so a query over them can still be dry-run at validation time.

A `bigquery.query` step's dry run names its result columns and their GoogleSQL types; the table it writes does not
exist before the first run. A downstream query reading that table is dry-run with the table replaced by an empty
inline SELECT of those columns (`(SELECT CAST(NULL AS INT64) AS order_id, ... LIMIT 0) AS orders`), so its column
names and types are checked against what the upstream step will write. Only for types GoogleSQL can spell in a
CAST (scalars and arrays of them): a STRUCT column leaves the table "known later".
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from shared.pipelines.sql_tables import node_offset

Columns = tuple[tuple[str, str], ...]
_SCALAR = r"(INT64|FLOAT64|STRING|BOOL|DATE|TIMESTAMP|DATETIME|TIME|BYTES|NUMERIC|BIGNUMERIC|JSON)"
_CASTABLE = re.compile(rf"^({_SCALAR}|ARRAY<{_SCALAR}>)$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def stand_in(columns: Columns) -> str | None:
    """An empty SELECT with these columns and types, or None if one of them cannot be written as a CAST."""
    if not columns or not all(_CASTABLE.match(kind) and _COLUMN.match(name) for name, kind in columns):
        return None
    return "SELECT " + ", ".join(f"CAST(NULL AS {kind}) AS `{name}`" for name, kind in columns) + " LIMIT 0"


def with_stand_ins(sql: str, tables: Mapping[str, Columns]) -> str | None:
    """`sql` (GoogleSQL) with every reference to a `dataset.table` of `tables` (lower-cased keys) replaced by its
    stand-in, aliased as the reference was (or by the table's name); None when that is not possible."""
    try:
        tree = sqlglot.parse_one(sql, read="bigquery")
    except SqlglotError:
        return None
    for table in list(tree.find_all(exp.Table)):
        key = f"{table.db}.{table.name}".lower()
        if not table.db or key not in tables:
            continue
        select = stand_in(tables[key])
        if select is None:
            return None
        alias = table.alias or table.name
        table.replace(
            exp.Subquery(
                this=sqlglot.parse_one(select, read="bigquery"), alias=exp.TableAlias(this=exp.to_identifier(alias))
            )
        )
    return tree.sql("bigquery")


def tables_read(sql: str) -> list[tuple[str, str, int | None]]:
    """(dataset, table, offset in `sql`) of every dataset-qualified table the query reads (CTE names excluded)."""
    try:
        tree = sqlglot.parse_one(sql, read="bigquery")
    except SqlglotError:
        return []
    tables = [t for t in tree.find_all(exp.Table) if t.db and isinstance(t.this, exp.Identifier)]
    return [(t.db, t.name, node_offset(t)) for t in tables]
