"""Dataset and table management of the embedded warehouse: datasets are DuckDB schemas, tables `dataset.table`, as
in BigQuery. Mixed into DuckDBWarehouse (shared/adapters/duckdb_warehouse.py), whose per-call cursors it uses; the
query, write and statement paths stay there. The name checks and quoting here are the ones every path uses.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager

import duckdb
import pyarrow as pa

from shared.adapters.duckdb_errors import mapped_errors
from shared.errors import TerminalError
from shared.ports.warehouse import PROVISION_HINT, TableInfo

_SOURCE_PREFIX = "__cloudact_src_"
_DATASET_LOCK = threading.Lock()
"""Serialises schema creation in this process (see `create_dataset`)."""


class DuckDBDatasets:
    # Provided by DuckDBWarehouse.
    _create_missing: bool
    _tenant: str | None

    def _cursor(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        raise NotImplementedError

    def require_dataset(self, dataset: str) -> None:
        """Created when missing if this warehouse creates missing datasets (the local runtime), else a TerminalError
        naming it, as on BigQuery."""
        check_name(dataset)
        if self._dataset_exists(dataset):
            return
        if not self._create_missing:
            hint = PROVISION_HINT.format(tenant=self._tenant or "TENANT")
            raise TerminalError(f"dataset {dataset} does not exist; {hint}")
        self.create_dataset(dataset)

    def create_dataset(self, dataset: str) -> bool:
        """Under one process-wide lock, looked up first: parallel steps creating the same schema would otherwise
        collide in DuckDB's catalog ("Catalog write-write conflict") and be retried."""
        check_name(dataset)
        with _DATASET_LOCK:
            if self._dataset_exists(dataset):
                return False
            with self._cursor() as cur, mapped_errors(f"creating dataset {dataset}"):
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(dataset)}")
        return True

    def _dataset_exists(self, dataset: str) -> bool:
        return dataset in self.list_datasets()

    def list_datasets(self) -> list[str]:
        with self._cursor() as cur, mapped_errors("listing datasets"):
            rows = cur.execute(
                "SELECT schema_name FROM information_schema.schemata WHERE catalog_name = current_database() "
                "AND schema_name NOT IN ('main', 'information_schema', 'pg_catalog') ORDER BY schema_name"
            ).fetchall()
        return [str(row[0]) for row in rows]

    def drop_dataset(self, dataset: str) -> bool:
        check_name(dataset)
        if dataset not in self.list_datasets():
            return False
        with self._cursor() as cur, mapped_errors(f"dropping dataset {dataset}"):
            cur.execute(f"DROP SCHEMA IF EXISTS {quote(dataset)} CASCADE")
        return True

    def list_tables(self, dataset: str) -> list[TableInfo]:
        """Tables (with COUNT(*), which DuckDB answers from its metadata) and views of one schema."""
        check_name(dataset)
        out: list[TableInfo] = []
        with self._cursor() as cur, mapped_errors(f"listing tables of {dataset}"):
            found = cur.execute(
                "SELECT table_name, table_type FROM information_schema.tables WHERE table_catalog = current_database() "
                "AND table_schema = $s ORDER BY table_name",
                {"s": dataset},
            ).fetchall()
            for name, kind in found:
                if kind == "VIEW":
                    out.append(TableInfo(dataset, str(name), "view", None))
                    continue
                row = cur.execute(f"SELECT count(*) FROM {quote(dataset)}.{quote(str(name))}").fetchone()
                out.append(TableInfo(dataset, str(name), "table", int(row[0]) if row else 0))
        return out

    def table_exists(self, table: str) -> bool:
        dataset, name = split_table(table)
        with self._cursor() as cur, mapped_errors(f"looking up {table}"):
            row = cur.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = $s AND table_name = $t",
                {"s": dataset, "t": name},
            ).fetchone()
        return bool(row and row[0])

    def create_table(
        self,
        table: str,
        schema: pa.Schema,
        partition_field: str | None = None,
        cluster_by: Sequence[str] = (),
    ) -> None:
        """Create the table if missing. Column types are DuckDB's own mapping of the arrow types; non-nullable
        fields become NOT NULL. Partitioning and clustering have no DuckDB equivalent and are ignored."""
        names = set(schema.names)
        for field_name in [partition_field, *cluster_by]:
            if field_name is not None and field_name not in names:
                raise TerminalError(f"{table}: partition/cluster field {field_name!r} is not in the schema")
        dataset, name = split_table(table)
        empty = schema.empty_table()
        with self._cursor() as cur, mapped_errors(f"creating {table}"):
            source = register_arrow(cur, empty)
            described = cur.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
            columns = ", ".join(
                f"{quote(col)} {col_type}{'' if schema.field(col).nullable else ' NOT NULL'}"
                for col, col_type, *_ in described
            )
            cur.execute(f"CREATE TABLE IF NOT EXISTS {quote(dataset)}.{quote(name)} ({columns})")


def register_arrow(cur: duckdb.DuckDBPyConnection, data: pa.Table) -> str:
    """Expose an arrow table to SQL on this cursor only, under a name no user table can clash with."""
    name = f"{_SOURCE_PREFIX}{uuid.uuid4().hex}"
    cur.register(name, data)
    return name


def check_name(part: str) -> None:
    if not part or not all(c.isalnum() or c in "_-" for c in part):
        raise TerminalError(f"invalid dataset/table name part {part!r}: use letters, digits, '_' or '-'")


def split_table(table: str) -> tuple[str, str]:
    """`dataset.table` (a leading project is allowed and ignored: the embedded warehouse has only one)."""
    parts = table.replace("`", "").split(".")
    if len(parts) == 3:
        parts = parts[1:]
    if len(parts) != 2:
        raise TerminalError(f"table must be named 'dataset.table', got {table!r}")
    for part in parts:
        check_name(part)
    return parts[0], parts[1]


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
