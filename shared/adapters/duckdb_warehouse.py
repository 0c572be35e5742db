"""The embedded warehouse: DuckDB running GoogleSQL via sqlglot, so pipelines keep one SQL dialect everywhere.

Datasets are DuckDB schemas and tables are `dataset.table`, exactly as in BigQuery. Statements handed to `query` or
`execute` are translated by `duckdb_sql` (GoogleSQL -> DuckDB, allowed statement types only). `@name` parameters
become DuckDB `$name` and are bound from a dict, so values never reach the SQL text.

Locally each tenant has its own database file, opened locked down by `duckdb_connection` (no files, no network, no
extensions, no setting changes from SQL).
"""

from __future__ import annotations

import copy
import re
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from shared.adapters.duckdb_connection import TenantDatabase
from shared.adapters.duckdb_errors import mapped_errors, streamed
from shared.adapters.duckdb_sql import Statement, transpile
from shared.adapters.duckdb_statements import DuckDBStatements
from shared.adapters.googlesql_errors import in_user_terms
from shared.adapters.running_work import RunningWork, WorkCancelled
from shared.errors import PipelineError, TerminalError
from shared.ports.statement_jobs import StatementStatus
from shared.ports.warehouse import PROVISION_HINT, DryRun, StepJobs, TableInfo, WriteMode

_SOURCE_PREFIX = "__cloudact_src_"
_DATASET_LOCK = threading.Lock()
"""Serialises schema creation in this process (see `create_dataset`)."""


class DuckDBWarehouse:
    """A `Warehouse` backed by one DuckDB database file (or `":memory:"`), safe to share between threads.

    DuckDB connections are not thread-safe, but cursors made from one connection are independent connections to the
    same database; each call takes its own cursor, so concurrent callers never share a connection's state. Each
    handle records the cursors it has running, so `cancel_running` on a step's `session()` interrupts that step's
    statements and no one else's.
    """

    def __init__(self, path: str | Path, create_missing_datasets: bool = True, tenant_id: str | None = None) -> None:
        with mapped_errors("opening DuckDB"):
            self._database = TenantDatabase(path)
        self._work: RunningWork[duckdb.DuckDBPyConnection] = RunningWork()
        self._is_session = False
        self._create_missing = create_missing_datasets
        self._tenant = tenant_id
        self._statements = DuckDBStatements()  # shared by every session of this database (shallow copies)

    def session(self) -> DuckDBWarehouse:
        """A handle on the same database for one step's work: `cancel_running` stops that work and nothing else."""
        session = copy.copy(self)
        session._work = RunningWork()
        session._is_session = True
        return session

    def cancel_running(self) -> bool:
        """Interrupt every statement this handle is running and refuse new ones; callable from any thread. True while
        a cursor of this handle is still open (the caller calls again until False)."""
        return self._work.cancel(_interrupt)

    # -- Warehouse -----------------------------------------------------------------------------------------------

    def require_dataset(self, dataset: str) -> None:
        """Created when missing if this warehouse creates missing datasets (the local runtime), else a TerminalError
        naming it, as on BigQuery."""
        _check_name(dataset)
        if self._dataset_exists(dataset):
            return
        if not self._create_missing:
            hint = PROVISION_HINT.format(tenant=self._tenant or "TENANT")
            raise TerminalError(f"dataset {dataset} does not exist; {hint}")
        self.create_dataset(dataset)

    def create_dataset(self, dataset: str) -> bool:
        """Under one process-wide lock, looked up first: parallel steps creating the same schema would otherwise
        collide in DuckDB's catalog ("Catalog write-write conflict") and be retried."""
        _check_name(dataset)
        with _DATASET_LOCK:
            if self._dataset_exists(dataset):
                return False
            with self._cursor() as cur, mapped_errors(f"creating dataset {dataset}"):
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(dataset)}")
        return True

    def _dataset_exists(self, dataset: str) -> bool:
        return dataset in self.list_datasets()

    def for_step(self, jobs: StepJobs) -> DuckDBWarehouse:
        """This handle itself: DuckDB runs statements, not labelled jobs, and a local query bills nothing, so the
        bytes cap does not apply. Cancellation is unchanged (same handle)."""
        return self

    def list_datasets(self) -> list[str]:
        with self._cursor() as cur, mapped_errors("listing datasets"):
            rows = cur.execute(
                "SELECT schema_name FROM information_schema.schemata WHERE catalog_name = current_database() "
                "AND schema_name NOT IN ('main', 'information_schema', 'pg_catalog') ORDER BY schema_name"
            ).fetchall()
        return [str(row[0]) for row in rows]

    def drop_dataset(self, dataset: str) -> bool:
        _check_name(dataset)
        if dataset not in self.list_datasets():
            return False
        with self._cursor() as cur, mapped_errors(f"dropping dataset {dataset}"):
            cur.execute(f"DROP SCHEMA IF EXISTS {_quote(dataset)} CASCADE")
        return True

    def list_tables(self, dataset: str) -> list[TableInfo]:
        """Tables (with COUNT(*), which DuckDB answers from its metadata) and views of one schema."""
        _check_name(dataset)
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
                row = cur.execute(f"SELECT count(*) FROM {_quote(dataset)}.{_quote(str(name))}").fetchone()
                out.append(TableInfo(dataset, str(name), "table", int(row[0]) if row else 0))
        return out

    def dry_run(self, sql: str, params: Mapping[str, Any] | None = None) -> DryRun:
        """Translate one GoogleSQL SELECT, then have DuckDB bind and plan it (EXPLAIN) and name its result columns
        (DESCRIBE): missing tables, columns, functions and type errors are found, no row is read."""
        statements = transpile(sql)
        if len(statements) != 1 or statements[0].kind != "query":
            raise TerminalError("a dry run takes exactly one SELECT statement")
        stmt = statements[0]
        values = _pick(_bind_values(params), stmt)
        with self._cursor() as cur, in_user_terms(sql), mapped_errors("dry run"):
            cur.execute(f"EXPLAIN {stmt.sql}", values)
            described = cur.execute(f"DESCRIBE {stmt.sql}", values).fetchall()
        return DryRun(tuple((str(row[0]), googlesql_type(str(row[1]))) for row in described), None)

    def preview(self, table: str, limit: int) -> pa.Table:
        dataset, name = _split(table)
        return self.query(f"SELECT * FROM {dataset}.{name} LIMIT {max(0, int(limit))}")

    def table_exists(self, table: str) -> bool:
        dataset, name = _split(table)
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
        dataset, name = _split(table)
        empty = schema.empty_table()
        with self._cursor() as cur, mapped_errors(f"creating {table}"):
            source = _register(cur, empty)
            described = cur.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
            columns = ", ".join(
                f"{_quote(col)} {col_type}{'' if schema.field(col).nullable else ' NOT NULL'}"
                for col, col_type, *_ in described
            )
            cur.execute(f"CREATE TABLE IF NOT EXISTS {_quote(dataset)}.{_quote(name)} ({columns})")

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run GoogleSQL; the last statement's rows come back as arrow, widened to BigQuery's column types."""
        statements = transpile(sql)
        values = _bind_values(params)
        with self._cursor() as cur, in_user_terms(sql), mapped_errors("query"):
            for stmt in statements[:-1]:
                cur.execute(stmt.sql, _pick(values, stmt))
                self._work.check()  # an interrupt that fell between two statements still stops the next one
            last = statements[-1]
            if last.kind == "query":
                # sql() streams straight to arrow; execute() would copy every row once more (DB-API path).
                result = cur.sql(last.sql, params=_pick(values, last)).to_arrow_table()
            else:
                cursor = cur.execute(last.sql, _pick(values, last))
                names = [d[0] for d in cursor.description or []]
                result = pa.Table.from_pylist([dict(zip(names, row, strict=True)) for row in cursor.fetchall()])
        return _widen(result)

    def query_batches(
        self, sql: str, params: Mapping[str, Any] | None = None, batch_rows: int = 65_536
    ) -> Iterator[pa.RecordBatch]:
        """Stream one GoogleSQL SELECT through DuckDB's arrow record-batch reader, widened like `query`. The cursor
        stays open until the iterator is exhausted or closed."""
        statements = transpile(sql)
        if len(statements) != 1 or statements[0].kind != "query":
            raise TerminalError("query_batches takes exactly one SELECT statement")
        stmt = statements[0]
        values = _pick(_bind_values(params), stmt)
        with self._cursor() as cur, in_user_terms(sql), mapped_errors("query"):
            reader = cur.sql(stmt.sql, params=values).to_arrow_reader(batch_rows)
            for batch in streamed(reader):
                self._work.check()  # the consumer may keep pulling batches after its step was cancelled
                yield from _widen(pa.Table.from_batches([batch])).to_batches()

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        """Run GoogleSQL DDL/DML; returns the rows touched by DML (DDL, including CREATE TABLE AS, counts 0, as on
        BigQuery)."""
        statements = transpile(sql)
        values = _bind_values(params)
        affected = 0
        with self._cursor() as cur, in_user_terms(sql), mapped_errors("execute"):
            for stmt in statements:
                self._work.check()
                cursor = cur.execute(stmt.sql, _pick(values, stmt))
                if stmt.kind == "dml":
                    row = cursor.fetchone()
                    affected += int(row[0]) if row and row[0] is not None else 0
        return affected

    def write_table(self, table: str, data: pa.Table, mode: WriteMode = "append") -> int:
        """Append or replace the rows of `table`, creating it from the arrow schema if missing.

        Columns are matched by name and the table keeps its declared types and NOT NULL constraints in both modes,
        which is what BigQuery does when a load names the table's schema.
        """
        if mode not in ("append", "truncate"):
            raise TerminalError(f"write mode must be 'append' or 'truncate', got {mode!r}")
        if not self.table_exists(table):
            self.create_table(table, data.schema)
        dataset, name = _split(table)
        target = f"{_quote(dataset)}.{_quote(name)}"
        with self._cursor() as cur, mapped_errors(f"writing {table}"):
            source = _register(cur, data)
            cur.execute("BEGIN TRANSACTION")
            try:
                if mode == "truncate":
                    cur.execute(f"DELETE FROM {target}")
                cur.execute(f"INSERT INTO {target} BY NAME SELECT * FROM {source}")
                cur.execute("COMMIT")
            except BaseException:
                with suppress(duckdb.Error):
                    cur.execute("ROLLBACK")
                raise
        return int(data.num_rows)

    def append_rows(self, table: str, data: pa.Table, key_columns: Sequence[str]) -> int:
        """Insert the rows whose key is not in the table yet, in one transaction: exactly idempotent, so a
        redelivered write adds nothing (BigQuery's streaming insert dedups only within its window)."""
        if not key_columns:
            raise TerminalError("append_rows needs the key columns that make a row unique")
        dataset, name = _split(table)
        target = f"{_quote(dataset)}.{_quote(name)}"
        with self._cursor() as cur, mapped_errors(f"writing {table}"):
            source = _register(cur, data)
            keys = ", ".join(map(_quote, key_columns))
            same_key = " AND ".join(f"t.{_quote(c)} IS NOT DISTINCT FROM s.{_quote(c)}" for c in key_columns)
            cur.execute("BEGIN TRANSACTION")
            try:  # DISTINCT ON: a key repeated within `data` is one row too, as BigQuery's insertId dedup makes it
                cur.execute(
                    f"INSERT INTO {target} BY NAME SELECT * FROM (SELECT DISTINCT ON ({keys}) * FROM {source}) AS s "
                    f"WHERE NOT EXISTS (SELECT 1 FROM {target} AS t WHERE {same_key})"
                )
                cur.execute("COMMIT")
            except BaseException:
                with suppress(duckdb.Error):
                    cur.execute("ROLLBACK")
                raise
        return int(data.num_rows)

    # -- StatementJobs (shared/ports/statement_jobs.py) ----------------------------------------------------------

    def start_statement(self, job_id: str, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """On a thread of its own, as a session of its own (so cancelling the job stops exactly its statement)."""
        job = self.session()
        self._statements.start(job_id, job.execute, job.cancel_running, sql, params)

    def statement_status(self, job_id: str) -> StatementStatus:
        return self._statements.status(job_id)

    def cancel_statement(self, job_id: str) -> None:
        self._statements.cancel(job_id)

    def close(self) -> None:
        """Close the database. A session only cancels its own work: the database stays open for everyone else."""
        if self._is_session:
            self.cancel_running()
        else:
            self._statements.close()
            self._database.close()

    # -- internals -----------------------------------------------------------------------------------------------

    def _cursor(self) -> _Cursor:
        self._work.check()
        with mapped_errors("opening a cursor"):
            return _Cursor(self._database.cursor(), self._work)


class _Cursor:
    """Context manager for a per-call cursor: recorded as running while open, then closed (and with it any arrow
    table registered on it)."""

    def __init__(self, cur: duckdb.DuckDBPyConnection, work: RunningWork[duckdb.DuckDBPyConnection]) -> None:
        try:
            work.started(cur)
        except WorkCancelled:
            cur.close()
            raise
        self._cur = cur
        self._work = work

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        return self._cur

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self._work.finished(self._cur)
        self._cur.close()
        if isinstance(exc, PipelineError) and not isinstance(exc, WorkCancelled) and self._work.cancelled:
            self._work.check()  # interrupted because the step was cancelled: say so (WorkCancelled), not "retry"


def _interrupt(cur: duckdb.DuckDBPyConnection) -> None:
    cur.interrupt()


# -- values, names, results --------------------------------------------------------------------------------------


def _bind_values(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Python values as DuckDB binds them: naive datetimes are UTC (as in BigQuery), tuples become lists."""
    out: dict[str, Any] = {}
    for key, value in (params or {}).items():
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        elif isinstance(value, tuple | set | frozenset):
            value = list(value)
        out[key] = value
    return out


def _pick(values: Mapping[str, Any], stmt: Statement) -> dict[str, Any] | None:
    """Only the parameters this statement names: DuckDB rejects extra ones, BigQuery ignores them."""
    if not stmt.params:
        return None
    by_name = {name.lower(): value for name, value in values.items()}  # GoogleSQL parameter names ignore case
    return {name: by_name[name.lower()] for name in stmt.params if name.lower() in by_name}


def _register(cur: duckdb.DuckDBPyConnection, data: pa.Table) -> str:
    """Expose an arrow table to SQL on this cursor only, under a name no user table can clash with."""
    name = f"{_SOURCE_PREFIX}{uuid.uuid4().hex}"
    cur.register(name, data)
    return name


def _widen(table: pa.Table) -> pa.Table:
    """Cast top-level columns to the arrow types BigQuery returns for the same SQL (module docstring)."""
    fields = []
    changed = False
    for f in table.schema:
        t = f.type
        if (pa.types.is_integer(t) and t != pa.int64() and t != pa.uint64()) or (
            pa.types.is_decimal(t) and t.precision == 38 and t.scale == 0
        ):
            f, changed = f.with_type(pa.int64()), True
        elif pa.types.is_floating(t) and t != pa.float64():
            f, changed = f.with_type(pa.float64()), True
        fields.append(f)
    return table.cast(pa.schema(fields, metadata=table.schema.metadata)) if changed else table


def _check_name(part: str) -> None:
    if not part or not all(c.isalnum() or c in "_-" for c in part):
        raise TerminalError(f"invalid dataset/table name part {part!r}: use letters, digits, '_' or '-'")


def _split(table: str) -> tuple[str, str]:
    """`dataset.table` (a leading project is allowed and ignored: the embedded warehouse has only one)."""
    parts = table.replace("`", "").split(".")
    if len(parts) == 3:
        parts = parts[1:]
    if len(parts) != 2:
        raise TerminalError(f"table must be named 'dataset.table', got {table!r}")
    for part in parts:
        _check_name(part)
    return parts[0], parts[1]


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


_GOOGLESQL_TYPES = {
    **dict.fromkeys(
        ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER", "USMALLINT", "UTINYINT"), "INT64"
    ),
    "DOUBLE": "FLOAT64",
    "FLOAT": "FLOAT64",
    "VARCHAR": "STRING",
    "BOOLEAN": "BOOL",
    "DATE": "DATE",
    "TIME": "TIME",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMP",
    "TIMESTAMP": "DATETIME",
    "BLOB": "BYTES",
    "JSON": "JSON",
}
_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")


def googlesql_type(duckdb_type: str) -> str:
    """A DuckDB column type (as DESCRIBE names it) by its GoogleSQL name, as a BigQuery dry run would name the same
    column: a naive TIMESTAMP is GoogleSQL's DATETIME, `X[]` is ARRAY<X>. A type GoogleSQL has no name for (STRUCT,
    MAP, ...) keeps DuckDB's."""
    text = duckdb_type.strip().upper()
    if text.endswith("[]"):
        return f"ARRAY<{googlesql_type(text[:-2])}>"
    decimal = _DECIMAL.match(text)
    if decimal:
        return "NUMERIC" if int(decimal.group(1)) <= 38 and int(decimal.group(2)) <= 9 else "BIGNUMERIC"
    return _GOOGLESQL_TYPES.get(text, duckdb_type)
