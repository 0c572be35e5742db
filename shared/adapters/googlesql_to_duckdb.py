"""Rewrites of a parsed GoogleSQL statement so DuckDB answers it as BigQuery does, where sqlglot's own BigQuery ->
DuckDB translation fails or answers differently. Applied to the already-checked tree, just before DuckDB SQL is
generated (duckdb_sql), so nothing here widens what the tenant-isolation allow-list accepted: every rewrite only
reshapes constructs that were checked.

- `UNNEST(arr) AS x` in FROM/JOIN: DuckDB turns the alias into a column alias (`_t0(x)`), so a table column of the
  same name (`LEFT JOIN UNNEST(labels) AS labels`) becomes ambiguous. The UNNEST gets a table alias no table has
  (`AS __u0(labels)`) and every reference to the element in its scope (correlated subqueries included) is qualified
  with it (`__u0.labels.key`); `WITH OFFSET` references count from 0.
- `UNNEST(arr)` without an alias: BigQuery exposes the fields of a STRUCT element as columns
  (`(SELECT SUM(amount) FROM UNNEST(credits))`); DuckDB's unnest gives one struct column. It becomes the derived
  table `(SELECT UNNEST(arr, max_depth := 2))`, which spreads struct fields into columns (scalar arrays keep one).
- `PIVOT (SUM(x) AS total FOR m IN ('a'))`: BigQuery's column is `total_a`, DuckDB's `a_total`; with one aggregate
  the values get the BigQuery names as aliases.
- `ARRAY_AGG(x ORDER BY y LIMIT n)`: DuckDB has no LIMIT there; the ordered list is sliced to its first n.
- `APPROX_QUANTILES(x, n)`: exact discrete quantiles (`QUANTILE_DISC(x, [0, 1/n, ..., 1])`). BigQuery's answer is
  approximate, and the exact one is within its error; DuckDB's own APPROX_QUANTILE is a different approximation.
- `APPROX_COUNT_DISTINCT(x)`: exact `COUNT(DISTINCT x)`, likewise within BigQuery's error (DuckDB's own HyperLogLog
  is another estimate).
- `PARSE_NUMERIC(s)` / `PARSE_BIGNUMERIC(s)`: DuckDB has neither; a cast of the text without spaces to
  DECIMAL(38, 9) (`SAFE.` makes it a TRY_CAST).
- NUMERIC divided by NUMERIC or INT64, and `AVG` of NUMERIC, are NUMERIC in BigQuery and DOUBLE in DuckDB, and
  NUMERIC * NUMERIC keeps 18 decimals in DuckDB: where the SQL itself makes the operands NUMERIC (casts,
  PARSE_NUMERIC, sums of those), the result is cast to DECIMAL(38, 9); with a column, DuckDB decides by the type it
  binds (googlesql_numeric).
- `FORMAT('%.2f', x)` is C-style: DuckDB's FORMAT is not, its PRINTF is. `DATE_FROM_UNIX_DATE` returns DATE,
  `PARSE_TIMESTAMP` a TIMESTAMP (UTC) rather than a naive one, `BYTE_LENGTH` of a STRING counts UTF-8 bytes
  (STRLEN), `TIME(ts)` and `EXTRACT(DATE | TIME | DATETIME FROM ts)`
  are casts (the session is UTC, as BigQuery's default).
- `SAFE.<function>(...)`: DuckDB read `SAFE.` as a schema; it becomes `TRY(<function>(...))`, NULL on error.
- `DATE_ADD`/`DATE_SUB` return DATE in BigQuery, a TIMESTAMP in DuckDB: cast back to DATE.
- `EXTRACT(WEEK(<weekday>) FROM d)`: the week number with weeks starting on that weekday (0 before its first
  occurrence in the year), computed from the day of year and the day of week.
- `IEEE_DIVIDE(x, y)`: FLOAT64 division (inf / NaN on zero), which is DuckDB's `/` on doubles.
- `BIGNUMERIC`: DuckDB's widest decimal is DECIMAL(38, s); it is computed as DECIMAL(38, 9), NUMERIC's type.
- `_PARTITIONTIME` / `_PARTITIONDATE`: refused with the reason (tables here are partitioned by a column, where BigQuery
  has no such pseudo-column either).
"""

from __future__ import annotations

import itertools

from sqlglot import exp

from shared.adapters.googlesql_numeric import numeric_arithmetic
from shared.errors import TerminalError

_PSEUDO_COLUMNS = frozenset({"_PARTITIONTIME", "_PARTITIONDATE"})
_WEEKDAYS = ("SUNDAY", "MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY")
_MAX_QUANTILES = 1000


def rewrite(tree: exp.Expr) -> exp.Expr:
    """Apply every rewrite of the module docstring to `tree` (in place where possible); returns the root."""
    _refuse_pseudo_columns(tree)
    counter = itertools.count()
    for select in list(tree.find_all(exp.Select)):
        _name_path_projections(select)
        _qualify_unnest_aliases(select, counter)
    for unnest in list(tree.find_all(exp.Unnest)):
        _spread_unaliased_unnest(unnest, counter)
    for pivot in list(tree.find_all(exp.Pivot)):
        _name_pivot_columns(pivot)
    # deepest first (find_all is breadth-first): an outer node's copy then already holds its rewritten children
    for node in reversed(
        list(
            tree.find_all(
                exp.ArrayAgg,
                exp.ApproxQuantiles,
                exp.ApproxDistinct,
                exp.DateAdd,
                exp.DateSub,
                exp.Anonymous,
                exp.ParseNumeric,
                exp.ParseBignumeric,
                exp.Format,
                exp.DateFromUnixDate,
                exp.Extract,
                exp.TsOrDsToTime,
                exp.ByteLength,
                exp.StrToTime,
            )
        )
    ):
        replacement = _function_rewrite(node)
        if replacement is not None:
            if isinstance(replacement, exp.TryCast) and isinstance(node.parent, exp.SafeFunc):
                node = node.parent  # SAFE.PARSE_NUMERIC(...) is the TRY_CAST as a whole
            if node is tree:
                return replacement
            node.replace(replacement)
    for arithmetic in reversed(list(tree.find_all(exp.Div, exp.Avg, exp.Mul))):
        if isinstance(arithmetic, exp.Div | exp.Avg | exp.Mul):
            numeric = numeric_arithmetic(arithmetic)
            if numeric is not None:
                arithmetic.replace(numeric)
    for safe in list(tree.find_all(exp.SafeFunc)):
        safe.replace(exp.Anonymous(this="TRY", expressions=[safe.this.copy()]))
    return tree


def week_number(node: exp.Extract) -> exp.Expr | None:
    """`EXTRACT(WEEK(<weekday>) FROM d)` as DuckDB arithmetic, or None for any other EXTRACT."""
    if not isinstance(node.this, exp.WeekStart):
        return None
    day = node.this.this.name.upper() if isinstance(node.this.this, exp.Var) else ""
    if day not in _WEEKDAYS:
        raise TerminalError(f"EXTRACT(WEEK({day or '?'})): the week must start on a weekday name (SUNDAY .. SATURDAY)")
    value = node.expression.copy()
    # days since the week's start (0..6), then the week of the year that start falls in (0 if in the previous year)
    since_start = f"((CAST(STRFTIME(d, '%w') AS BIGINT) - {_WEEKDAYS.index(day)} + 7) % 7)"
    formula = f"CAST((DAYOFYEAR(d) - {since_start} + 6) // 7 AS BIGINT)"
    parsed: exp.Expr = exp.maybe_parse(formula, dialect="duckdb")
    for column in list(parsed.find_all(exp.Column)):
        if column.name == "d":
            column.replace(value.copy())
    return parsed


# -- UNNEST ------------------------------------------------------------------------------------------------------


def _name_path_projections(select: exp.Select) -> None:
    """`SELECT labels.key ... ORDER BY key`: BigQuery names a path's result column after its last part and lets
    ORDER BY/GROUP BY use that name; DuckDB only knows explicit aliases, so the name is written out."""
    for projection in list(select.expressions):
        if isinstance(projection, exp.Column) and not isinstance(projection.this, exp.Star) and projection.table:
            projection.replace(exp.alias_(projection.copy(), projection.name, quoted=True))


def _sources(select: exp.Select) -> list[exp.Expr]:
    """The FROM item and each JOIN's item, in order."""
    items: list[exp.Expr] = []
    from_ = select.args.get("from_")
    if isinstance(from_, exp.From):
        items.append(from_.this)
    items.extend(join.this for join in select.args.get("joins") or [])
    return items


def _defined_names(select: exp.Select) -> set[str]:
    """Lower-cased names a SELECT defines itself: its FROM/JOIN items (table aliases, table names, UNNEST aliases)
    and its result column aliases (which its GROUP BY / ORDER BY may use)."""
    names: set[str] = {e.alias.lower() for e in select.expressions if isinstance(e, exp.Alias)}
    for item in _sources(select):
        alias = item.args.get("alias")
        if isinstance(alias, exp.TableAlias):
            names.update(c.name.lower() for c in alias.columns)
            if alias.name:
                names.add(alias.name.lower())
        if isinstance(item, exp.Table):
            names.add(item.name.lower())
    return names


def _qualify_unnest_aliases(select: exp.Select, counter: itertools.count[int]) -> None:
    """Give each aliased UNNEST in FROM/JOIN a table alias of its own (`AS __u0(labels)`) and qualify every
    reference to its element and offset with it (`__u0.labels.key`): a table column of the same name is then never
    ambiguous, and the result column keeps the user's name."""
    items = _sources(select)
    for position, item in enumerate(items):
        alias = item.args.get("alias") if isinstance(item, exp.Unnest) else None
        if not isinstance(alias, exp.TableAlias) or len(alias.columns) != 1 or alias.name:
            continue
        table = f"__u{next(counter)}"
        alias.set("this", exp.to_identifier(table))
        skip = {id(node) for earlier in items[:position] for node in earlier.walk()}
        skip.update(id(node) for argument in item.expressions for node in argument.walk())
        _qualify_references(select, alias.columns[0].name.lower(), table, skip, is_offset=False)
        offset = item.args.get("offset")
        if isinstance(offset, exp.Identifier):
            _qualify_references(select, offset.name.lower(), table, skip, is_offset=True)


def _qualify_references(select: exp.Select, old: str, table: str, skip: set[int], is_offset: bool) -> None:
    """Qualify every column path starting with `old` inside `select` with `table`, except inside `skip` and inside
    nested SELECTs that define `old` themselves (their own name shadows it). An offset counts from 0 in BigQuery and
    from 1 in DuckDB's WITH ORDINALITY, so its references become `table.old - 1`."""
    pending: list[exp.Expr] = [select]
    while pending:
        node = pending.pop()
        if id(node) in skip or (isinstance(node, exp.With) and node.parent is select):
            continue  # a CTE body cannot see this SELECT's FROM
        if isinstance(node, exp.Select) and node is not select and old in _defined_names(node):
            continue
        if isinstance(node, exp.Column):
            _qualify_column(node, old, table, select, is_offset)
            continue
        pending.extend(node.iter_expressions())


def _qualify_column(column: exp.Column, old: str, table: str, select: exp.Select, is_offset: bool) -> None:
    parts = [column.args[key] for key in ("catalog", "db", "table", "this") if column.args.get(key) is not None]
    if not isinstance(parts[0], exp.Identifier) or parts[0].name.lower() != old:
        return
    path = [exp.to_identifier(table), *(part.copy() for part in parts)]
    head = dict(zip(("catalog", "db", "table", "this")[-len(path[:4]) :], path[:4], strict=True))
    qualified: exp.Expr = exp.Column(**head)
    for field in path[4:]:
        qualified = exp.Dot(this=qualified, expression=field)
    projected = column.parent is select and column in select.expressions
    if is_offset and len(parts) == 1:
        qualified = exp.paren(exp.Sub(this=qualified, expression=exp.Literal.number(1)), copy=False)
        if projected:
            qualified = exp.alias_(qualified, old, quoted=False)  # the result keeps the user's name
    column.replace(qualified)


def _spread_unaliased_unnest(unnest: exp.Unnest, counter: itertools.count[int]) -> None:
    if not isinstance(unnest.parent, exp.From | exp.Join) or unnest.args.get("alias") or unnest.args.get("offset"):
        return
    if len(unnest.expressions) != 1:
        return
    spread = exp.Anonymous(
        this="UNNEST",
        expressions=[
            unnest.expressions[0].copy(),
            exp.PropertyEQ(this=exp.var("max_depth"), expression=exp.Literal.number(2)),
        ],
    )
    derived = exp.Subquery(
        this=exp.Select(expressions=[spread]), alias=exp.TableAlias(this=exp.to_identifier(f"__u{next(counter)}"))
    )
    parent = unnest.parent
    unnest.replace(derived)
    if isinstance(parent, exp.Join) and parent.side and not parent.args.get("on") and not parent.args.get("using"):
        parent.set("on", exp.true())


def _name_pivot_columns(pivot: exp.Pivot) -> None:
    """BigQuery names a PIVOT column `<aggregate alias>_<value or its alias>`, DuckDB `<value>_<aggregate alias>`.
    With one aliased aggregate the names are given to the values instead (DuckDB then uses them alone)."""
    aggregates, fields = pivot.expressions, pivot.args.get("fields") or []
    if pivot.args.get("unpivot") or len(aggregates) != 1 or not isinstance(aggregates[0], exp.Alias):
        return
    prefix = aggregates[0].alias
    for field in fields:
        if not isinstance(field, exp.In):
            return
        for value in list(field.expressions):
            named = value.alias if isinstance(value, exp.PivotAlias) else value.name
            target = value.this if isinstance(value, exp.PivotAlias) else value
            if not named:
                return
            new = exp.PivotAlias(this=target.copy(), alias=exp.to_identifier(f"{prefix}_{named}", quoted=True))
            value.replace(new)
    aggregates[0].replace(aggregates[0].this.copy())


# -- functions ---------------------------------------------------------------------------------------------------


def _function_rewrite(node: exp.Expr) -> exp.Expr | None:
    if isinstance(node, exp.ArrayAgg):
        _array_agg_limit(node)
        return None
    if isinstance(node, exp.ApproxQuantiles):
        return _quantiles(node)
    if isinstance(node, exp.ParseNumeric | exp.ParseBignumeric):
        # BigQuery allows spaces around the sign and digits; DECIMAL(38, 9) as for NUMERIC (BIGNUMERIC: see above)
        text = exp.Anonymous(
            this="REPLACE", expressions=[node.this.copy(), exp.Literal.string(" "), exp.Literal.string("")]
        )
        cast = exp.TryCast if isinstance(node.parent, exp.SafeFunc) else exp.Cast
        return cast(this=text, to=exp.DataType.build("DECIMAL(38, 9)"))
    converted = _conversion(node)
    if converted is not None:
        return converted
    if isinstance(node, exp.ApproxDistinct):
        return exp.Count(this=exp.Distinct(expressions=[node.this.copy()]))
    if isinstance(node, exp.DateAdd | exp.DateSub):
        if isinstance(node.parent, exp.Cast):
            return None
        return exp.cast(node.copy(), "DATE")
    if isinstance(node, exp.Anonymous) and node.name.upper() == "IEEE_DIVIDE" and len(node.expressions) == 2:
        x, y = (exp.cast(arg.copy(), "DOUBLE") for arg in node.expressions)
        return exp.paren(exp.Div(this=x, expression=y))
    return None


def _conversion(node: exp.Expr) -> exp.Expr | None:
    """Formatting and conversions DuckDB spells or types differently (module docstring)."""
    if isinstance(node, exp.Format):
        return exp.Anonymous(this="PRINTF", expressions=[node.this.copy(), *(e.copy() for e in node.expressions)])
    if isinstance(node, exp.DateFromUnixDate) and not isinstance(node.parent, exp.Cast):
        return exp.cast(node.copy(), "DATE")
    if isinstance(node, exp.StrToTime) and not isinstance(node.parent, exp.Cast):
        return exp.cast(node.copy(), "TIMESTAMPTZ")  # PARSE_TIMESTAMP gives a TIMESTAMP (UTC), DuckDB a naive one
    if isinstance(node, exp.ByteLength):
        return exp.Anonymous(this="STRLEN", expressions=[node.this.copy()])
    if isinstance(node, exp.TsOrDsToTime) and not (isinstance(node.this, exp.Literal) and node.this.is_string):
        return exp.cast(exp.cast(node.this.copy(), "TIMESTAMP"), "TIME")
    if isinstance(node, exp.Extract) and isinstance(node.this, exp.Var):
        part = node.this.name.upper()
        value = node.expression.copy()
        if part == "DATE":
            return exp.cast(value, "DATE")
        if part == "DATETIME":
            return exp.cast(value, "TIMESTAMP")
        if part == "TIME":
            return exp.cast(exp.cast(value, "TIMESTAMP"), "TIME")
    return None


def _array_agg_limit(node: exp.ArrayAgg) -> None:
    limit = node.this
    if not isinstance(limit, exp.Limit):
        return
    count = limit.expression
    if not (isinstance(count, exp.Literal) and count.is_int):
        raise TerminalError("ARRAY_AGG(... LIMIT n): n must be an integer literal")
    node.set("this", limit.this)
    outer: exp.Expr = node.parent if isinstance(node.parent, exp.IgnoreNulls | exp.RespectNulls) else node
    sliced = exp.Anonymous(
        this="LIST_SLICE", expressions=[outer.copy(), exp.Literal.number(1), exp.Literal.number(int(count.name))]
    )
    outer.replace(sliced)


def _quantiles(node: exp.ApproxQuantiles) -> exp.Expr:
    buckets = node.expression
    if not (isinstance(buckets, exp.Literal) and buckets.is_int) or not 1 <= int(buckets.name) <= _MAX_QUANTILES:
        raise TerminalError(
            f"APPROX_QUANTILES(x, n): n must be an integer literal from 1 to {_MAX_QUANTILES} here "
            "(DISTINCT and RESPECT NULLS are not supported locally)"
        )
    n = int(buckets.name)
    points = [exp.cast(exp.Literal.number(repr(k / n)), "DOUBLE") for k in range(n + 1)]
    return exp.Anonymous(this="QUANTILE_DISC", expressions=[node.this.copy(), exp.Array(expressions=points)])


def _refuse_pseudo_columns(tree: exp.Expr) -> None:
    for column in tree.find_all(exp.Column):
        if column.name.upper() in _PSEUDO_COLUMNS:
            raise TerminalError(
                f"{column.name} is not available: it exists only on ingestion-time partitioned BigQuery tables, and "
                "tables written here are partitioned by a column (destination.partition_field); filter on that "
                "column instead, e.g. WHERE DATE(usage_start_time) >= @start_date"
            )
