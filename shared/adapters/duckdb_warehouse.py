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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from shared.adapters.duckdb_connection import TenantDatabase
from shared.adapters.duckdb_datasets import DuckDBDatasets, quote, register_arrow, split_table
from shared.adapters.duckdb_errors import mapped_errors, streamed
from shared.adapters.duckdb_sql import Statement, transpile
from shared.adapters.duckdb_statements import DuckDBStatements
from shared.adapters.googlesql_errors import in_user_terms
from shared.adapters.running_work import RunningWork, WorkCancelled
from shared.errors import PipelineError, TerminalError
from shared.ports.statement_jobs import StatementStatus
from shared.ports.warehouse import DryRun, StepJobs, WriteMode


class DuckDBWarehouse(DuckDBDatasets):
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

    # -- Warehouse (datasets and tables: DuckDBDatasets) ---------------------------------------------------------

    def for_step(self, jobs: StepJobs) -> DuckDBWarehouse:
        """This handle itself: DuckDB runs statements, not labelled jobs, and a local query bills nothing, so the
        bytes cap does not apply. Cancellation is unchanged (same handle)."""
        return self

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
        dataset, name = split_table(table)
        return self.query(f"SELECT * FROM {dataset}.{name} LIMIT {max(0, int(limit))}")

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
        dataset, name = split_table(table)
        target = f"{quote(dataset)}.{quote(name)}"
        with self._cursor() as cur, mapped_errors(f"writing {table}"):
            source = register_arrow(cur, data)
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
        dataset, name = split_table(table)
        target = f"{quote(dataset)}.{quote(name)}"
        with self._cursor() as cur, mapped_errors(f"writing {table}"):
            source = register_arrow(cur, data)
            keys = ", ".join(map(quote, key_columns))
            same_key = " AND ".join(f"t.{quote(c)} IS NOT DISTINCT FROM s.{quote(c)}" for c in key_columns)
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
