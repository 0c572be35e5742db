"""The embedded warehouse: DuckDB running GoogleSQL via sqlglot, so pipelines keep one SQL dialect everywhere.

Datasets are DuckDB schemas and tables are `dataset.table`, exactly as in BigQuery. Every statement handed to `query`
or `execute` is parsed as GoogleSQL, patched where DuckDB's meaning differs cheaply (below), and generated as DuckDB
SQL; the result is cached because pipelines run the same statements over and over. `@name` parameters become DuckDB
`$name` and are bound from a dict, so values never reach the SQL text.

Patched so DuckDB answers like BigQuery:
- `EXTRACT(DAYOFWEEK ...)` is 1 (Sunday) .. 7 in BigQuery but 0 .. 6 in DuckDB: 1 is added.
- `EXTRACT(WEEK ...)` is the Sunday-based week (0-53) in BigQuery but the ISO week in DuckDB: it becomes `%U`.
- `DATE_TRUNC(...)` returns a DATE in BigQuery but a TIMESTAMP in DuckDB: it is cast back to DATE (so a TIMESTAMP
  argument also comes back as a DATE here; use `TIMESTAMP_TRUNC` for timestamps, as on BigQuery).
- Non-integer numeric literals (`1.5`) are FLOAT64 in BigQuery but DECIMAL in DuckDB: they are cast to DOUBLE.
- `NUMERIC` is DECIMAL(38, 9) in BigQuery but a bare DECIMAL is (18, 3) in DuckDB: it is spelled DECIMAL(38, 9).
- `EXTRACT(ISOWEEK ...)` is DuckDB's `WEEK`.
- Result columns are widened to BigQuery's types: small ints -> int64, float32 -> float64, and the HUGEINT that DuckDB
  gives for `SUM(INT64)` (decimal128(38, 0)) -> int64.
- Naive `datetime` parameters are taken as UTC (BigQuery's TIMESTAMP rule); the session time zone is UTC.

Known differences left as they are (write SQL that avoids them):
- Division by zero gives inf/NULL in DuckDB; BigQuery raises. Use SAFE_DIVIDE, which agrees on both.
- `PARSE_TIMESTAMP` returns a naive timestamp; unaliased expression columns are named differently on each engine.
- Scripting (`DECLARE`/`SET` variables), `EXTRACT(WEEK(<weekday>) ...)` and partition decorators are not supported;
  a multi-statement call runs its statements one by one, not atomically.
- Partitioning and clustering are accepted by `create_table` and ignored: DuckDB has neither.
- Constructs sqlglot reports it cannot translate faithfully fail with TerminalError instead of running as something
  else (the one exception: its EXTRACT-from-TIMESTAMPTZ warning, moot in a UTC session).
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NamedTuple

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError, UnsupportedError

from shared.errors import TerminalError, TransientError
from shared.ports.warehouse import WriteMode

StatementKind = Literal["query", "dml", "ddl", "other"]

_SOURCE_PREFIX = "__cloudact_src_"
_DUCKDB = Dialect.get_or_raise("duckdb")
# sqlglot warns that EXTRACT from a TIMESTAMP may differ by time zone: BigQuery extracts in UTC, and so does this
# adapter's session (SET GLOBAL TimeZone='UTC').
_HARMLESS_UNSUPPORTED = ("timezone handling differences",)


class _Statement(NamedTuple):
    """One DuckDB statement transpiled from GoogleSQL, with the parameter names it binds."""

    sql: str
    params: tuple[str, ...]
    kind: StatementKind


class DuckDBWarehouse:
    """A `Warehouse` backed by one DuckDB database file (or `":memory:"`), safe to share between threads.

    DuckDB connections are not thread-safe, but cursors made from one connection are independent connections to the
    same database; each call takes its own cursor, so concurrent callers never share a connection's state.
    """

    def __init__(self, path: str | Path) -> None:
        target = str(path)
        if target != ":memory:":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._closed = False
        with _mapped_errors("opening DuckDB"):
            self._con = duckdb.connect(target)
            # GLOBAL, not session: cursors are fresh connections and would not inherit a session setting.
            # (duckdb.connect(config={"TimeZone": ...}) raises on duckdb 2.0.)
            self._con.execute("SET GLOBAL TimeZone='UTC'")

    # -- Warehouse -----------------------------------------------------------------------------------------------

    def ensure_dataset(self, dataset: str) -> None:
        _check_name(dataset)
        with self._cursor() as cur, _mapped_errors(f"creating dataset {dataset}"):
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(dataset)}")

    def table_exists(self, table: str) -> bool:
        dataset, name = _split(table)
        with self._cursor() as cur, _mapped_errors(f"looking up {table}"):
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
        with self._cursor() as cur, _mapped_errors(f"creating {table}"):
            source = _register(cur, empty)
            described = cur.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
            columns = ", ".join(
                f"{_quote(col)} {col_type}{'' if schema.field(col).nullable else ' NOT NULL'}"
                for col, col_type, *_ in described
            )
            cur.execute(f"CREATE TABLE IF NOT EXISTS {_quote(dataset)}.{_quote(name)} ({columns})")

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run GoogleSQL; the last statement's rows come back as arrow, widened to BigQuery's column types."""
        statements = _transpile(sql)
        values = _bind_values(params)
        with self._cursor() as cur, _mapped_errors("query", statements):
            for stmt in statements[:-1]:
                cur.execute(stmt.sql, _pick(values, stmt))
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
        statements = _transpile(sql)
        if len(statements) != 1 or statements[0].kind != "query":
            raise TerminalError("query_batches takes exactly one SELECT statement")
        stmt = statements[0]
        values = _pick(_bind_values(params), stmt)
        with self._cursor() as cur, _mapped_errors("query", statements):
            reader = cur.sql(stmt.sql, params=values).to_arrow_reader(batch_rows)
            for batch in reader:
                yield from _widen(pa.Table.from_batches([batch])).to_batches()

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        """Run GoogleSQL DDL/DML; returns the rows touched by DML (DDL, including CREATE TABLE AS, counts 0, as on
        BigQuery)."""
        statements = _transpile(sql)
        values = _bind_values(params)
        affected = 0
        with self._cursor() as cur, _mapped_errors("execute", statements):
            for stmt in statements:
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
        with self._cursor() as cur, _mapped_errors(f"writing {table}"):
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

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._con.close()

    # -- internals -----------------------------------------------------------------------------------------------

    def _cursor(self) -> _Cursor:
        with self._lock:
            if self._closed:
                raise TerminalError("DuckDBWarehouse is closed")
            with _mapped_errors("opening a cursor"):
                return _Cursor(self._con.cursor())


class _Cursor:
    """Context manager closing a per-call cursor (and with it any arrow table registered on it)."""

    def __init__(self, cur: duckdb.DuckDBPyConnection) -> None:
        self._cur = cur

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        return self._cur

    def __exit__(self, *exc: object) -> None:
        self._cur.close()


@contextmanager
def _mapped_errors(action: str, statements: Sequence[_Statement] = ()) -> Iterator[None]:
    """Translate DuckDB exceptions into the pipeline's transient/terminal split.

    User mistakes (parse, bind, catalog, conversion, constraint, bad input) are terminal; contention (transaction
    conflicts), IO, lock and memory trouble are transient because a later attempt can succeed.
    """
    try:
        yield
    except duckdb.Error as exc:
        sql = "; ".join(s.sql for s in statements)
        detail = f"{action}: {exc}" + (f"\n[DuckDB SQL: {sql[:2000]}]" if sql else "")
        if isinstance(exc, duckdb.OperationalError | duckdb.InterruptException):
            raise TransientError(f"DuckDB {detail}") from exc
        raise TerminalError(f"DuckDB {detail}") from exc


# -- transpilation -----------------------------------------------------------------------------------------------


@lru_cache(maxsize=512)
def _transpile(sql: str) -> tuple[_Statement, ...]:
    """GoogleSQL text -> DuckDB statements. Cached: the same pipeline SQL is transpiled once per process."""
    try:
        parsed = [e for e in sqlglot.parse(sql, read="bigquery") if e is not None]
        if not parsed:
            raise TerminalError("empty SQL: no statement to run")
        out = []
        for tree in parsed:
            names = tuple(dict.fromkeys(p.name for p in tree.find_all(exp.Parameter)))
            kind = _kind(tree)
            _patch(tree)
            out.append(_Statement(_generate(tree), names, kind))
        return tuple(out)
    except SqlglotError as e:
        raise TerminalError(f"GoogleSQL could not be translated for DuckDB: {_describe(e)}\n[SQL: {sql[:2000]}]") from e


def _generate(tree: exp.Expr) -> str:
    """DuckDB text for one statement. sqlglot's "unsupported" notes mean DuckDB would compute something else, so they
    fail the statement instead of being logged, except the ones the UTC session makes moot."""
    generator = _DUCKDB.generator(unsupported_level=ErrorLevel.IGNORE)
    text = generator.generate(tree)
    problems = [m for m in generator.unsupported_messages if not any(ok in m for ok in _HARMLESS_UNSUPPORTED)]
    if problems:
        raise UnsupportedError("; ".join(problems))
    return text


def _describe(error: SqlglotError) -> str:
    """sqlglot's message without its ANSI underline codes: `<problem> at [line:col] near '<token>'`."""
    if isinstance(error, ParseError) and error.errors:
        first = error.errors[0]
        return f"{first['description']} at [{first['line']}:{first['col']}] near {first['highlight']!r}"
    return re.sub(r"\x1b\[[0-9;]*m", "", str(error))


def _kind(tree: exp.Expr) -> StatementKind:
    if isinstance(tree, exp.Query):
        return "query"
    if isinstance(tree, exp.Insert | exp.Update | exp.Delete | exp.Merge):
        return "dml"
    if isinstance(tree, exp.Create | exp.Drop | exp.Alter | exp.TruncateTable):
        return "ddl"
    return "other"


def _patch(tree: exp.Expr) -> None:
    """Rewrite, in place, the GoogleSQL constructs that DuckDB would silently answer differently (module docstring).
    Deepest nodes first, so an outer node's copy already holds its patched children."""
    nodes = list(tree.find_all(exp.Extract, exp.DateTrunc, exp.Literal, exp.DataType))
    for node in reversed(nodes):
        if isinstance(node, exp.Extract):
            part = node.this.name.upper() if isinstance(node.this, exp.Var) else ""
            if part == "DAYOFWEEK":
                node.replace(exp.paren(exp.Add(this=node.copy(), expression=exp.Literal.number(1)), copy=False))
            elif part == "WEEK":
                week = exp.Anonymous(this="STRFTIME", expressions=[node.expression.copy(), exp.Literal.string("%U")])
                node.replace(exp.cast(week, "BIGINT"))
            elif part == "ISOWEEK":
                node.set("this", exp.var("WEEK"))  # DuckDB's WEEK is the ISO week
        elif isinstance(node, exp.DateTrunc):
            if not _is_timestamp(node.this):
                node.replace(exp.cast(node.copy(), "DATE"))
        elif isinstance(node, exp.DataType):
            if node.this == exp.DataType.Type.DECIMAL and not node.expressions:
                node.replace(exp.DataType.build("DECIMAL(38, 9)"))  # NUMERIC; DuckDB's bare DECIMAL is (18, 3)
        elif (
            isinstance(node, exp.Literal)
            and not isinstance(node.parent, exp.Cast)
            and not node.is_string
            and not node.is_int
            and _is_plain_number(node.this)
        ):
            node.replace(exp.cast(node.copy(), "DOUBLE"))


def _is_timestamp(node: exp.Expr) -> bool:
    if isinstance(node, exp.CurrentTimestamp | exp.CurrentDatetime | exp.TimestampTrunc | exp.DatetimeTrunc):
        return True
    return isinstance(node, exp.Cast) and node.to.this in exp.DataType.TEMPORAL_TYPES - {exp.DataType.Type.DATE}


def _is_plain_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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


def _pick(values: Mapping[str, Any], stmt: _Statement) -> dict[str, Any] | None:
    """Only the parameters this statement names: DuckDB rejects extra ones, BigQuery ignores them."""
    if not stmt.params:
        return None
    return {name: values[name] for name in stmt.params if name in values}


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
