"""NUMERIC arithmetic on DuckDB as BigQuery computes it (a part of googlesql_to_duckdb's rewrites): DuckDB divides
and averages decimals as doubles and keeps 18 decimals in a product of two DECIMAL(38, 9), where BigQuery's results are
NUMERIC, rounded to 9 decimals half away from zero."""

from __future__ import annotations

from sqlglot import exp

_DECIMAL_TYPES = (exp.DataType.Type.DECIMAL, exp.DataType.Type.BIGDECIMAL)
_INTEGER_TYPES = (exp.DataType.Type.BIGINT, exp.DataType.Type.INT)


def numeric_arithmetic(node: exp.Div | exp.Avg | exp.Mul) -> exp.Expr | None:
    """BigQuery's NUMERIC / NUMERIC-or-INT64 and AVG(NUMERIC) are NUMERIC, DuckDB divides decimals as doubles; and
    NUMERIC * NUMERIC is rounded to 9 decimals in BigQuery, kept at 18 in DuckDB (so a SUM of products differs).
    Where the SQL itself shows the operands are NUMERIC (a cast, PARSE_NUMERIC, arithmetic and aggregates of those)
    the result is cast to DECIMAL(38, 9), which rounds half away from zero as BigQuery does. Where one side is NUMERIC
    and the other's type is unknown here (a column), DuckDB decides by the type it binds: `typeof` is constant, so the
    dead branch is dropped and a FLOAT64 operand keeps a FLOAT64 result."""
    if isinstance(node, exp.Avg):
        return exp.cast(node.copy(), "DECIMAL(38, 9)") if _kind(node.this) == "numeric" else None
    left, right = _kind(node.this), _kind(node.expression)
    kinds = {left, right}
    if "numeric" not in kinds or not kinds <= {"numeric", "int", "other"}:
        return None
    if isinstance(node, exp.Mul):
        if kinds == {"numeric"}:
            return exp.cast(node.copy(), "DECIMAL(38, 9)")
        if "other" in kinds:
            return _if_decimal(
                node, node, exp.Anonymous(this="ROUND", expressions=[node.copy(), exp.Literal.number(9)])
            )
        return None
    if "other" not in kinds:
        return exp.cast(node.copy(), "DECIMAL(38, 9)")
    unknown = node.this if left == "other" else node.expression
    return _if_decimal(unknown, node, exp.cast(node.copy(), "DECIMAL(38, 9)"), integers_too=True)


def _if_decimal(probe: exp.Expr, node: exp.Expr, numeric: exp.Expr, integers_too: bool = False) -> exp.Expr:
    """`CASE WHEN typeof(probe) is DECIMAL [or an integer] THEN numeric ELSE node END`."""
    type_name = exp.Anonymous(this="TYPEOF", expressions=[probe.copy()])
    condition: exp.Expr = exp.Like(this=type_name, expression=exp.Literal.string("DECIMAL%"))
    if integers_too:
        integers = [exp.Literal.string(t) for t in ("BIGINT", "INTEGER", "HUGEINT", "SMALLINT", "TINYINT")]
        condition = exp.or_(condition, exp.In(this=type_name.copy(), expressions=integers))
    return exp.Case(ifs=[exp.If(this=condition, true=numeric)], default=node.copy())


def _kind(node: exp.Expr) -> str:
    """ "numeric", "int" or "other" (unknown included), from the expression's own syntax."""
    if isinstance(node, exp.Paren):
        return _kind(node.this)
    if isinstance(node, exp.Cast | exp.TryCast):
        if node.to.this in _DECIMAL_TYPES:
            return "numeric"
        return "int" if node.to.this in _INTEGER_TYPES else "other"
    if isinstance(node, exp.ParseNumeric | exp.ParseBignumeric):
        return "numeric"
    if isinstance(node, exp.Literal):
        return "int" if node.is_int else ("other" if node.is_string else "float")
    if isinstance(node, exp.Count | exp.CountIf):
        return "int"
    if isinstance(node, exp.Sum | exp.Min | exp.Max | exp.AnyValue | exp.Abs | exp.Neg | exp.Round):
        return _kind(node.this)
    if isinstance(node, exp.Add | exp.Sub | exp.Mul):
        kinds = {_kind(node.this), _kind(node.expression)}
        if kinds == {"int"}:
            return "int"
        return "numeric" if "numeric" in kinds and kinds <= {"numeric", "int"} else "other"
    if isinstance(node, exp.Coalesce):
        kinds = {_kind(node.this), *(_kind(e) for e in node.expressions)}
        return kinds.pop() if len(kinds) == 1 else "other"
    return "other"
