"""GoogleSQL -> DuckDB SQL for the embedded warehouse, and the statements a tenant may run there at all.

Every statement is parsed as GoogleSQL, checked against an allow-list of statement types, patched where DuckDB's
meaning differs cheaply (below) and generated as DuckDB SQL, which DuckDB's own parser then classifies once more. The
result is cached because pipelines run the same statements over and over.

Only queries, DML (INSERT, UPDATE, DELETE, MERGE, TRUNCATE), table/view/schema/function DDL and BEGIN/COMMIT/ROLLBACK
run. Everything else (ATTACH, COPY, INSTALL/LOAD, SET/RESET, PRAGMA, USE, CALL, EXPORT, CHECKPOINT, DuckDB-only CREATE
SECRET/MACRO/TYPE, which sqlglot passes through verbatim) is refused before DuckDB sees it: the locked-down connection
refuses most of them anyway; this gives one clear message and closes what no setting covers (attaching an in-memory
database, CHECKPOINT).

Patched so DuckDB answers like BigQuery:
- `EXTRACT(DAYOFWEEK ...)` is 1 (Sunday) .. 7 in BigQuery but 0 .. 6 in DuckDB: 1 is added.
- `EXTRACT(WEEK ...)` is the Sunday-based week (0-53) in BigQuery but the ISO week in DuckDB: it becomes `%U`.
- `DATE_TRUNC(...)` returns a DATE in BigQuery but a TIMESTAMP in DuckDB: it is cast back to DATE (so a TIMESTAMP
  argument also comes back as a DATE here; use `TIMESTAMP_TRUNC` for timestamps, as on BigQuery).
- Non-integer numeric literals (`1.5`) are FLOAT64 in BigQuery but DECIMAL in DuckDB: they are cast to DOUBLE.
- `NUMERIC` is DECIMAL(38, 9) in BigQuery but a bare DECIMAL is (18, 3) in DuckDB: it is spelled DECIMAL(38, 9).
- `EXTRACT(ISOWEEK ...)` is DuckDB's `WEEK`; `EXTRACT(WEEK(<weekday>) ...)` is computed (googlesql_to_duckdb).
- `BIGNUMERIC` is DECIMAL(38, 9) too (sqlglot's DECIMAL(38, 5) dropped digits; DuckDB has nothing wider).
- Correlated UNNEST, ARRAY_AGG ... LIMIT, APPROX_*, DATE_ADD, PARSE_NUMERIC, SAFE., NUMERIC division and the rest are
  rewritten by `googlesql_to_duckdb.rewrite` first (see there, and docs/sql-compatibility.md).
- Result columns are widened to BigQuery's types: small ints -> int64, float32 -> float64, and the HUGEINT that DuckDB
  gives for `SUM(INT64)` (decimal128(38, 0)) -> int64.
- Naive `datetime` parameters are taken as UTC (BigQuery's TIMESTAMP rule); the session time zone is UTC.

Known differences left as they are (write SQL that avoids them):
- Division by zero gives inf/NULL in DuckDB; BigQuery raises. Use SAFE_DIVIDE, which agrees on both.
- Unaliased expression columns are named differently on each engine.
- Scripting (`DECLARE`/`SET` variables), partition decorators and `_PARTITIONTIME` are not supported; a
  multi-statement call runs its statements one by one, not atomically.
- Partitioning and clustering are accepted by `create_table` and ignored: DuckDB has neither.
- Constructs sqlglot reports it cannot translate faithfully fail with TerminalError instead of running as something
  else (the one exception: its EXTRACT-from-TIMESTAMPTZ warning, moot in a UTC session).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal, NamedTuple

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError, UnsupportedError

from shared.adapters.googlesql_to_duckdb import rewrite, week_number
from shared.errors import TerminalError

StatementKind = Literal["query", "dml", "ddl", "transaction"]

_DUCKDB = Dialect.get_or_raise("duckdb")
# sqlglot warns that EXTRACT from a TIMESTAMP may differ by time zone: BigQuery extracts in UTC, and so does this
# adapter's session (SET GLOBAL TimeZone='UTC').
_HARMLESS_UNSUPPORTED = ("timezone handling differences",)
_CREATABLE = frozenset({"TABLE", "VIEW", "SCHEMA", "FUNCTION"})
"""What CREATE may make: BigQuery's own kinds (sqlglot spells a dataset SCHEMA)."""
_DUCKDB_TYPES = {
    "query": {duckdb.StatementType.SELECT},
    "dml": {
        duckdb.StatementType.INSERT,
        duckdb.StatementType.UPDATE,
        duckdb.StatementType.DELETE,
        duckdb.StatementType.MERGE_INTO,
    },
    "ddl": {duckdb.StatementType.CREATE, duckdb.StatementType.DROP, duckdb.StatementType.ALTER},
    "transaction": {duckdb.StatementType.TRANSACTION},
}
"""DuckDB's classification each kind must have once generated (TRUNCATE is a DELETE to DuckDB)."""


class Statement(NamedTuple):
    """One DuckDB statement transpiled from GoogleSQL, with the parameter names it binds."""

    sql: str
    params: tuple[str, ...]
    kind: StatementKind


@lru_cache(maxsize=512)
def transpile(sql: str) -> tuple[Statement, ...]:
    """GoogleSQL text -> DuckDB statements. Cached: the same pipeline SQL is transpiled once per process."""
    try:
        parsed = [e for e in sqlglot.parse(sql, read="bigquery") if e is not None]
        if not parsed:
            raise TerminalError("empty SQL: no statement to run")
        out = []
        for tree in parsed:
            kind = _kind(tree)
            names = tuple(dict.fromkeys(p.name for p in tree.find_all(exp.Parameter)))
            tree = rewrite(tree)
            _patch(tree)
            out.append(_check_generated(Statement(_generate(tree), names, kind)))
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
    """The statement's kind, or TerminalError for a statement outside the allow-list (module docstring)."""
    if isinstance(tree, exp.Query):
        return "query"
    if isinstance(tree, exp.Insert | exp.Update | exp.Delete | exp.Merge | exp.TruncateTable):
        return "dml"
    if isinstance(tree, exp.Create) and str(tree.args.get("kind") or "").upper() in _CREATABLE:
        return "ddl"
    if isinstance(tree, exp.Drop | exp.Alter):
        return "ddl"
    if isinstance(tree, exp.Transaction | exp.Commit | exp.Rollback):
        return "transaction"
    raise TerminalError(f"statement not allowed in pipeline SQL: {_first_words(tree.sql('bigquery'))}")


def _first_words(text: str) -> str:
    """The statement's opening words (enough to name it) without echoing all of it."""
    words = text.split()
    return " ".join(words[:3]) + (" ..." if len(words) > 3 else "")


def _check_generated(statement: Statement) -> Statement:
    """DuckDB's own parser must classify the generated text as the kind sqlglot saw: a statement sqlglot mis-read
    (it parses unknown syntax loosely) cannot reach the database as something else."""
    try:
        parsed = duckdb.extract_statements(statement.sql)
    except duckdb.Error as e:
        raise TerminalError(f"GoogleSQL could not be translated for DuckDB: {str(e).splitlines()[0]}") from e
    if len(parsed) != 1 or parsed[0].type not in _DUCKDB_TYPES[statement.kind]:
        raise TerminalError(f"statement not allowed in pipeline SQL: {_first_words(statement.sql)}")
    return statement


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
            else:
                weekly = week_number(node)
                if weekly is not None:
                    node.replace(exp.paren(weekly, copy=False))
        elif isinstance(node, exp.DateTrunc):
            if not _is_timestamp(node.this):
                node.replace(exp.cast(node.copy(), "DATE"))
        elif isinstance(node, exp.DataType):
            if (node.this == exp.DataType.Type.DECIMAL and not node.expressions) or (
                node.this == exp.DataType.Type.BIGDECIMAL
            ):
                # NUMERIC (DuckDB's bare DECIMAL is (18, 3)); BIGNUMERIC too, DuckDB having no decimal wider than 38
                node.replace(exp.DataType.build("DECIMAL(38, 9)"))
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
