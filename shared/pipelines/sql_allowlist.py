"""What a tenant's SQL may be made of: an explicit allow-list of parsed node types and GoogleSQL functions.

Every node of the parsed statement (sqlglot, BigQuery dialect) must be one of the classes below; anything else is
refused, whatever its name or position. That is the point: a deny-list misses whatever the parser files under a
different shape (a table function in LATERAL, an un-dotted `current_setting(...)`), an allow-list cannot.

Functions sqlglot knows are matched by class (`exp.Sum`, `exp.DateTrunc`, ...), so every spelling of one function
(`CEIL`/`CEILING`, `SUBSTR`/`SUBSTRING`) is covered by one entry. Functions sqlglot does not model arrive as
`exp.Anonymous` and pass only if their upper-cased name is in `NAMED_FUNCTIONS`. Table-valued functions, LATERAL,
user functions (`dataset.fn(...)`), hints, `SELECT ... INTO` and every DuckDB-only construct have no class here.

Adding a function: parse `SELECT FN(...)` with sqlglot's BigQuery dialect, look at the class it yields, make sure the
DuckDB generator turns it into a pure scalar/aggregate (no file, network, catalog or setting access), and add it.
"""

from __future__ import annotations

import re

from sqlglot import exp

QUERY_STRUCTURE: frozenset[type[exp.Expr]] = frozenset(
    {
        # statements and clauses
        exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery, exp.With, exp.CTE,
        exp.From, exp.Join, exp.Where, exp.Group, exp.Rollup, exp.Cube, exp.GroupingSets, exp.Having,
        exp.Qualify, exp.Order, exp.Ordered, exp.Limit, exp.Offset, exp.Distinct, exp.Window, exp.WindowSpec,
        exp.Pivot, exp.PivotAlias, exp.TableSample, exp.Version,
        # names (tables and CTE references are checked separately: see sql_tables)
        exp.Table, exp.TableAlias, exp.Alias, exp.Column, exp.Identifier, exp.Star, exp.Dot, exp.Var,
        # values
        exp.Literal, exp.RawString, exp.ByteString, exp.Boolean, exp.Null, exp.Parameter, exp.Interval,
        exp.DataType, exp.DataTypeParam, exp.ColumnDef, exp.Tuple, exp.Paren, exp.Bracket, exp.PropertyEQ,
        exp.JSONPath, exp.JSONPathKey, exp.JSONPathRoot, exp.JSONPathSubscript, exp.JSONPathWildcard,
        exp.JSONKeyValue,
        # operators
        exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod, exp.Neg, exp.DPipe,
        exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ,
        exp.Is, exp.In, exp.Not, exp.Between, exp.Like, exp.Exists,
        exp.BitwiseAnd, exp.BitwiseOr, exp.BitwiseXor, exp.BitwiseNot, exp.BitwiseLeftShift, exp.BitwiseRightShift,
        # aggregate modifiers
        exp.IgnoreNulls, exp.RespectNulls, exp.HavingMax,
    }
)  # fmt: skip
"""Clauses, names, literals and operators of a GoogleSQL query."""

FUNCTIONS: frozenset[type[exp.Expr]] = frozenset(
    {
        # conditional and logical
        exp.And, exp.Or, exp.Case, exp.If, exp.Coalesce, exp.Nullif, exp.Greatest, exp.Least,
        # conversion
        exp.Cast, exp.TryCast, exp.SafeFunc, exp.Int64, exp.Float64, exp.String, exp.LaxString, exp.ParseNumeric,
        exp.ParseBignumeric, exp.Collate,
        # aggregate
        exp.AnyValue, exp.ArrayAgg, exp.ArrayConcatAgg, exp.Avg, exp.BitwiseAndAgg, exp.BitwiseOrAgg,
        exp.BitwiseXorAgg, exp.Count, exp.CountIf, exp.LogicalAnd, exp.LogicalOr, exp.Max, exp.Min, exp.GroupConcat,
        exp.Sum, exp.ApproxDistinct, exp.ApproxQuantiles, exp.ApproxTopK, exp.ApproxTopSum, exp.ArgMax, exp.ArgMin,
        exp.Corr, exp.CovarPop, exp.CovarSamp, exp.Stddev, exp.StddevPop, exp.StddevSamp, exp.Variance,
        exp.VariancePop,
        # window and navigation
        exp.RowNumber, exp.Rank, exp.DenseRank, exp.PercentRank, exp.CumeDist, exp.Ntile, exp.Lag, exp.Lead,
        exp.FirstValue, exp.LastValue, exp.NthValue, exp.PercentileCont, exp.PercentileDisc,
        # mathematical
        exp.Abs, exp.Acos, exp.Acosh, exp.Asin, exp.Asinh, exp.Atan, exp.Atan2, exp.Atanh, exp.Cbrt, exp.Ceil,
        exp.Cos, exp.Cosh, exp.Cot, exp.Coth, exp.Csc, exp.Csch, exp.Exp, exp.Floor, exp.IsInf, exp.IsNan, exp.Ln,
        exp.Log, exp.Pow, exp.Rand, exp.RangeBucket, exp.Round, exp.SafeAdd, exp.SafeDivide, exp.SafeMultiply,
        exp.SafeNegate, exp.SafeSubtract, exp.Sec, exp.Sech, exp.Sign, exp.Sin, exp.Sinh, exp.Sqrt, exp.Tan,
        exp.Tanh, exp.Trunc, exp.BitwiseCount,
        # string and bytes
        exp.Ascii, exp.ByteLength, exp.Chr, exp.CodePointsToBytes, exp.CodePointsToString, exp.Concat,
        exp.Contains, exp.Levenshtein, exp.EndsWith, exp.Format, exp.FromBase32, exp.FromBase64, exp.Unhex,
        exp.Initcap, exp.StrPosition, exp.Left, exp.Length, exp.Lower, exp.Pad, exp.Trim, exp.Normalize,
        exp.RegexpLike, exp.RegexpExtract, exp.RegexpExtractAll, exp.RegexpInstr, exp.RegexpReplace, exp.Repeat,
        exp.Replace, exp.Reverse, exp.Right, exp.SafeConvertBytesToString, exp.Soundex, exp.Split, exp.StartsWith,
        exp.Substring, exp.ToBase32, exp.ToBase64, exp.ToCodePoints, exp.LowerHex, exp.Translate, exp.Unicode,
        exp.Upper,
        # hashing and ids
        exp.FarmFingerprint, exp.MD5, exp.MD5Digest, exp.SHA, exp.SHA1Digest, exp.SHA2, exp.SHA2Digest, exp.Uuid,
        # date and time
        exp.CurrentDate, exp.CurrentDatetime, exp.CurrentTime, exp.CurrentTimestamp, exp.Date, exp.DateFromParts,
        exp.DateAdd, exp.DateSub, exp.DateDiff, exp.DateTrunc, exp.DateFromUnixDate, exp.Extract, exp.LastDay,
        exp.StrToDate, exp.UnixDate, exp.TsOrDsToDate, exp.TsOrDsToDatetime, exp.TsOrDsToTime, exp.TsOrDsToTimestamp,
        exp.DatetimeAdd, exp.DatetimeSub, exp.DatetimeDiff, exp.DatetimeTrunc, exp.ParseDatetime, exp.TimeToStr,
        exp.TimeFromParts, exp.TimeAdd, exp.TimeSub, exp.TimeDiff, exp.TimeTrunc, exp.ParseTime, exp.Timestamp,
        exp.TimestampAdd, exp.TimestampSub, exp.TimestampDiff, exp.TimestampTrunc, exp.StrToTime, exp.UnixToTime,
        exp.UnixSeconds, exp.UnixMillis, exp.UnixMicros, exp.MakeInterval, exp.JustifyDays,
        # DATETIME(ts, tz) / DATETIME(date, time); WEEK(<weekday>) as a DATE_TRUNC / EXTRACT part
        exp.Datetime, exp.WeekStart,
        # arrays and structs
        exp.Array, exp.Struct, exp.Unnest, exp.ArrayConcat, exp.ArraySize, exp.ArrayReverse, exp.ArrayToString,
        exp.ArrayFirst, exp.ArrayLast, exp.ArraySlice, exp.GenerateSeries, exp.GenerateDateArray,
        exp.GenerateTimestampArray,
        # JSON
        exp.JSONExtract, exp.JSONExtractScalar, exp.JSONExtractArray, exp.JSONValueArray, exp.ParseJSON,
        exp.JSONFormat, exp.JSONType, exp.JSONObject, exp.JSONArray,
        # NET.* (the member functions are checked like any other node)
        exp.NetFunc, exp.Host, exp.RegDomain,
    }
)  # fmt: skip
"""GoogleSQL scalar, aggregate and window functions, by the class sqlglot parses them into."""

NAMED_FUNCTIONS = frozenset({"IEEE_DIVIDE"})
"""GoogleSQL functions sqlglot parses as `exp.Anonymous`, by upper-cased name."""
NET_FUNCTIONS = frozenset({"PUBLIC_SUFFIX", "IP_FROM_STRING", "SAFE_IP_FROM_STRING", "IP_TO_STRING", "IP_NET_MASK"})
"""`NET.<name>` functions sqlglot parses as `exp.Anonymous` inside `exp.NetFunc`: allowed there only."""

ALLOWED_NODES = QUERY_STRUCTURE | FUNCTIONS

_SYSTEM_NAME = re.compile(r"^(information_schema|pg_catalog|duckdb_|pg_|sqlite_|pragma_|region-)", re.IGNORECASE)
"""Catalog and system names of DuckDB (duckdb_tables, pg_settings, sqlite_master, information_schema) and BigQuery
(INFORMATION_SCHEMA, `region-us`): a CTE or alias with such a name could be mistaken for the real catalog."""


def is_system_name(name: str) -> bool:
    """True if `name` is, or could be taken for, a catalog/system table or schema (case-insensitive)."""
    return bool(_SYSTEM_NAME.match(name))


def node_problem(node: exp.Expr) -> str | None:
    """Why `node` may not appear in a tenant's query, or None if it is on the allow-list."""
    if isinstance(node, exp.Anonymous):
        name = node.name.upper()
        if name in NAMED_FUNCTIONS or (name in NET_FUNCTIONS and isinstance(node.parent, exp.NetFunc)):
            return None
        return f"function {node.name}() is not allowed: only GoogleSQL built-in functions may run here"
    if isinstance(node, exp.Dot) and not isinstance(node.expression, exp.Identifier):
        inner = node.expression
        called = inner.name if isinstance(inner, exp.Anonymous) else inner.sql("bigquery")[:40]
        return (
            f"function {node.this.sql('bigquery')[:60]}.{called}() is not allowed: user-defined functions and "
            "functions outside GoogleSQL's built-ins may not run here"
        )
    if isinstance(node, exp.Parameter) and isinstance(node.this, exp.Parameter):
        return f"system variable @{node.this.sql('bigquery')} is not allowed: pass values as @name query parameters"
    if type(node) in ALLOWED_NODES:
        return None
    if isinstance(node, exp.Lateral):
        return "LATERAL is not allowed: join a table of your own datasets or UNNEST an array instead"
    if isinstance(node, exp.Func):
        return f"function {_function_name(node)}() is not allowed: only GoogleSQL built-in functions may run here"
    return f"{_construct_name(node)} is not allowed in a step's query"


def _function_name(node: exp.Func) -> str:
    try:
        return node.sql_name()
    except Exception:  # sqlglot raises for a few internal classes without a SQL name
        return type(node).__name__.upper()


def _construct_name(node: exp.Expr) -> str:
    text = node.sql("bigquery").strip().split("\n", 1)[0]
    shown = text if len(text) <= 40 else text[:37] + "..."
    return f"`{shown}` ({node.key.upper()})" if shown else node.key.upper()
