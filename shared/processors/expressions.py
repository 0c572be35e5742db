"""A small, safe expression language for `arrow.transform` filters and derived columns, evaluated with pyarrow compute.

Written like a Python/SQL expression and parsed with `ast.parse(mode="eval")`, then checked node by node against a
short allow-list and compiled to closures over pyarrow.compute. Nothing is ever `eval`ed: names are columns, the only
calls are the functions below, and anything else (attribute tricks, subscripts, lambdas, comprehensions) is refused
with the column where it starts.

    cost > 0 and currency == 'USD'            comparisons, and / or / not, in [...] / not in [...]
    usage.amount * 2 - 1                      + - * / on numbers (/ is always float division, as in GoogleSQL)
    service.description                       a struct field; on a list of structs, the list of that field
    date(usage_start_time) >= '2026-10-05'    a string literal compared with a date/timestamp is read as one
    list_sum(credits.amount)                  functions: see FUNCTIONS

Null handling follows SQL: comparisons with null are null, and a filter keeps only rows where the condition is true.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shared.errors import TerminalError
from shared.processors.step_config import arrow_type

Evaluator = Callable[[pa.RecordBatch], Any]
"""Evaluates to a pyarrow Array (one value per row) or a Scalar (a literal)."""

_COMPARE: dict[type[ast.cmpop], str] = {
    ast.Eq: "equal",
    ast.NotEq: "not_equal",
    ast.Lt: "less",
    ast.LtE: "less_equal",
    ast.Gt: "greater",
    ast.GtE: "greater_equal",
}
_ARITHMETIC: dict[type[ast.operator], str] = {
    ast.Add: "add_checked",
    ast.Sub: "subtract_checked",
    ast.Mult: "multiply_checked",
}
_LITERAL_NAMES = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


class ExpressionError(ValueError):
    """A malformed or disallowed expression; the message names the offending part and its column."""


@dataclass(frozen=True)
class Expression:
    text: str
    evaluate: Evaluator
    columns: frozenset[str]
    """Top-level columns the expression reads (for source projection)."""


def compile_expression(text: str) -> Expression:
    """Parse and check `text`; raises ExpressionError for anything outside the language."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"expression {text!r}: syntax error at column {exc.offset or 0}: {exc.msg}") from exc
    columns: set[str] = set()
    evaluate = _Compiler(text, columns).visit(tree.body)
    return Expression(text, evaluate, frozenset(columns))


def evaluate_to_array(expr: Expression, batch: pa.RecordBatch) -> pa.Array:
    """Evaluate over a batch; a literal result is repeated for every row. Arrow errors become TerminalErrors."""
    try:
        value = expr.evaluate(batch)
        if isinstance(value, pa.Scalar):
            return pa.repeat(value, batch.num_rows)
        if isinstance(value, pa.ChunkedArray):
            return value.combine_chunks()
        return value
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, KeyError, TypeError) as exc:
        raise TerminalError(f"expression {expr.text!r} failed: {exc}") from exc


class _Compiler:
    def __init__(self, text: str, columns: set[str]) -> None:
        self._text = text
        self._columns = columns

    def fail(self, node: ast.AST, message: str) -> ExpressionError:
        col = getattr(node, "col_offset", 0) + 1
        return ExpressionError(f"expression {self._text!r} at column {col}: {message}")

    def visit(self, node: ast.AST) -> Evaluator:
        handler = getattr(self, f"_visit_{type(node).__name__}", None)
        if handler is None:
            raise self.fail(node, f"{type(node).__name__} is not allowed here")
        result: Evaluator = handler(node)
        return result

    def _visit_Constant(self, node: ast.Constant) -> Evaluator:
        if not isinstance(node.value, str | int | float | bool) and node.value is not None:
            raise self.fail(node, f"literal {node.value!r} is not allowed")
        value = pa.scalar(node.value)
        return lambda batch: value

    def _visit_Name(self, node: ast.Name) -> Evaluator:
        if node.id in _LITERAL_NAMES:
            value = pa.scalar(_LITERAL_NAMES[node.id])
            return lambda batch: value
        name = node.id
        self._columns.add(name)

        def column(batch: pa.RecordBatch) -> Any:
            index = batch.schema.get_field_index(name)
            if index < 0:
                raise KeyError(f"no column {name!r} (columns: {', '.join(batch.schema.names)})")
            return batch.column(index)

        return column

    def _visit_Attribute(self, node: ast.Attribute) -> Evaluator:
        inner = self.visit(node.value)
        if not isinstance(node.value, ast.Name | ast.Attribute):
            raise self.fail(node, "field access is only allowed on columns (a.b.c)")
        field = node.attr
        return lambda batch: struct_field(inner(batch), field)

    def _visit_BoolOp(self, node: ast.BoolOp) -> Evaluator:
        parts = [self.visit(v) for v in node.values]
        fn = pc.and_kleene if isinstance(node.op, ast.And) else pc.or_kleene

        def combine(batch: pa.RecordBatch) -> Any:
            result = parts[0](batch)
            for part in parts[1:]:
                result = fn(result, part(batch))
            return result

        return combine

    def _visit_UnaryOp(self, node: ast.UnaryOp) -> Evaluator:
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return lambda batch: pc.invert(operand(batch))
        if isinstance(node.op, ast.USub):
            return lambda batch: pc.negate_checked(operand(batch))
        if isinstance(node.op, ast.UAdd):
            return operand
        raise self.fail(node, f"operator {type(node.op).__name__} is not allowed")

    def _visit_BinOp(self, node: ast.BinOp) -> Evaluator:
        left, right = self.visit(node.left), self.visit(node.right)
        if isinstance(node.op, ast.Div):
            return lambda batch: pc.divide(_as_float(left(batch)), _as_float(right(batch)))
        name = _ARITHMETIC.get(type(node.op))
        if name is None:
            raise self.fail(node, f"operator {type(node.op).__name__} is not allowed (use + - * /)")
        fn = getattr(pc, name)
        return lambda batch: fn(left(batch), right(batch))

    def _visit_Compare(self, node: ast.Compare) -> Evaluator:
        steps: list[Evaluator] = []
        left: Evaluator | None = self.visit(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if left is None:
                raise self.fail(right_node, "nothing can be compared with a list: use `and`")
            if isinstance(op, ast.In | ast.NotIn):
                steps.append(self._membership(left, op, right_node))
                left = None
                continue
            name = _COMPARE.get(type(op))
            if name is None:
                raise self.fail(node, f"comparison {type(op).__name__} is not allowed")
            right = self.visit(right_node)
            steps.append(_comparison(getattr(pc, name), left, right))
            left = right

        def chained(batch: pa.RecordBatch) -> Any:
            result = steps[0](batch)
            for step in steps[1:]:
                result = pc.and_kleene(result, step(batch))
            return result

        return chained

    def _membership(self, left: Evaluator, op: ast.cmpop, right: ast.expr) -> Evaluator:
        if not isinstance(right, ast.List | ast.Tuple) or not all(isinstance(e, ast.Constant) for e in right.elts):
            raise self.fail(right, "`in` needs a list of literals, e.g. region in ['us-east1', 'europe-west1']")
        values = [e.value for e in right.elts if isinstance(e, ast.Constant)]
        negate = isinstance(op, ast.NotIn)

        def member(batch: pa.RecordBatch) -> Any:
            subject = left(batch)
            value_set = pa.array(values)
            if value_set.type != subject.type and len(values):
                value_set = value_set.cast(subject.type)
            found = pc.is_in(subject, value_set=value_set)
            found = pc.if_else(pc.is_null(subject), pa.scalar(None, pa.bool_()), found)
            return pc.invert(found) if negate else found

        return member

    def _visit_Call(self, node: ast.Call) -> Evaluator:
        if not isinstance(node.func, ast.Name):
            raise self.fail(node, "only plain function calls are allowed, e.g. date(ts)")
        spec = FUNCTIONS.get(node.func.id)
        if spec is None:
            raise self.fail(node, f"unknown function {node.func.id!r}; known: {', '.join(sorted(FUNCTIONS))}")
        if node.keywords:
            raise self.fail(node, f"{node.func.id}() takes positional arguments only")
        low, high, impl = spec
        if not low <= len(node.args) <= high:
            expected = str(low) if low == high else f"{low}..{high if high < 99 else 'n'}"
            raise self.fail(node, f"{node.func.id}() takes {expected} arguments, got {len(node.args)}")
        args = [self.visit(a) for a in node.args]
        if node.func.id == "cast":  # the type name is checked now, not at run time
            type_arg = node.args[1]
            if not isinstance(type_arg, ast.Constant) or not isinstance(type_arg.value, str):
                raise self.fail(type_arg, "cast() needs a type name string, e.g. cast(x, 'float64')")
            try:
                arrow_type(type_arg.value)
            except ValueError as exc:
                raise self.fail(type_arg, str(exc)) from exc
        return lambda batch: impl(*(a(batch) for a in args))


# -- runtime helpers ---------------------------------------------------------------------------------------------


def _as_float(value: Any) -> Any:
    if pa.types.is_integer(value.type) or pa.types.is_decimal(value.type):
        return pc.cast(value, pa.float64())
    return value


def _comparison(fn: Callable[..., Any], left: Evaluator, right: Evaluator) -> Evaluator:
    def compare(batch: pa.RecordBatch) -> Any:
        a, b = _align_literal(left(batch), right(batch))
        return fn(a, b)

    return compare


def _align_literal(a: Any, b: Any) -> tuple[Any, Any]:
    """A string literal next to a temporal/numeric/decimal value is cast to that type ('2026-10-05' vs a date)."""

    def castable(literal: Any, other: Any) -> bool:
        return (
            isinstance(literal, pa.Scalar)
            and pa.types.is_string(literal.type)
            and not pa.types.is_string(other.type)
            and (pa.types.is_temporal(other.type) or pa.types.is_decimal(other.type))
        )

    if castable(b, a):
        return a, _literal_as(b, a.type)
    if castable(a, b):
        return _literal_as(a, b.type), b
    return a, b


def _literal_as(literal: pa.Scalar, target: pa.DataType) -> pa.Scalar:
    """Cast a string literal; a timestamp without an offset ('2026-10-05', '2026-10-05 10:00') is read as UTC."""
    try:
        return literal.cast(target)
    except pa.ArrowInvalid:
        if pa.types.is_timestamp(target) and target.tz is not None:
            return literal.cast(pa.timestamp(target.unit)).cast(target)
        raise


def struct_field(value: Any, field: str) -> Any:
    """`a.b`: a struct's field; over a list of structs, the list of that field (credits.amount)."""
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    if pa.types.is_struct(value.type):
        if value.type.get_field_index(field) < 0:
            names = [value.type.field(i).name for i in range(value.type.num_fields)]
            raise KeyError(f"struct has no field {field!r} (fields: {', '.join(names)})")
        return pc.struct_field(value, field)
    if pa.types.is_list(value.type) or pa.types.is_large_list(value.type):
        offsets = value.offsets  # a sliced array's offsets need not start at 0: rebase them onto its own values
        start, end = offsets[0].as_py(), offsets[-1].as_py()
        inner = struct_field(value.values.slice(start, end - start), field)
        return type(value).from_arrays(pc.subtract(offsets, start), inner, mask=value.is_null())
    raise KeyError(f"cannot read field {field!r} of a {value.type} value")


def _list_parts(value: Any) -> tuple[Any, np.ndarray[Any, Any], Any]:
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    if not (pa.types.is_list(value.type) or pa.types.is_large_list(value.type)):
        raise TypeError(f"expected a list, got {value.type}")
    parents = pc.list_parent_indices(value).to_numpy(zero_copy_only=False)
    return value, parents, pc.list_flatten(value)


def list_sum(value: Any) -> Any:
    """Sum of each row's list (empty list -> 0, null list -> null); a list of numbers, e.g. credits.amount."""
    lists, parents, flat = _list_parts(value)
    numbers = pc.fill_null(_as_float(flat), 0.0).to_numpy(zero_copy_only=False)
    sums = np.bincount(parents, weights=numbers, minlength=len(lists)) if len(lists) else np.zeros(0)
    return pa.array(sums, pa.float64(), mask=lists.is_null().to_numpy(zero_copy_only=False))


def kv_lookup(value: Any, key: Any) -> Any:
    """The `value` of the first {key, value} struct whose key equals `key` (labels -> 'team'); null if none."""
    lists, parents, flat = _list_parts(value)
    keys = struct_field(flat, "key")
    matches = pc.equal(keys, key).fill_null(False).to_numpy(zero_copy_only=False)
    hit_rows, first = np.unique(parents[matches], return_index=True)
    values = struct_field(flat, "value").filter(pa.array(matches)).take(pa.array(first, pa.int64()))
    positions = np.full(len(lists), -1, dtype=np.int64)
    positions[hit_rows] = np.arange(len(hit_rows))
    index = pa.array(positions, mask=positions < 0)
    return values.take(index)


def _round(value: Any, digits: Any = None) -> Any:
    ndigits = 0 if digits is None else int(digits.as_py())
    return pc.round(value, ndigits=ndigits)


def _date(value: Any) -> Any:
    return pc.cast(value, pa.date32())


def _timestamp(value: Any) -> Any:
    return pc.cast(value, pa.timestamp("us", tz="UTC"))


def _cast(value: Any, type_name: Any) -> Any:
    return pc.cast(value, arrow_type(type_name.as_py()))


def _concat(*parts: Any) -> Any:
    return pc.binary_join_element_wise(*(pc.cast(p, pa.string()) for p in parts), "")


def _substr(value: Any, start: Any, length: Any = None) -> Any:
    begin = int(start.as_py()) - 1  # 1-based, as in SQL
    stop = None if length is None else begin + int(length.as_py())
    return pc.utf8_slice_codeunits(value, start=begin, stop=stop)


def _strftime(value: Any, fmt: Any) -> Any:
    return pc.strftime(value, format=fmt.as_py())


def _safe_divide(a: Any, b: Any) -> Any:
    a, b = _as_float(a), _as_float(b)
    zero = pc.equal(b, 0.0)
    return pc.if_else(zero, pa.scalar(None, pa.float64()), pc.divide(a, b))


def _regex_match(value: Any, pattern: Any) -> Any:
    return pc.match_substring_regex(value, pattern=pattern.as_py())


def _coalesce(*values: Any) -> Any:
    return pc.coalesce(*values)


# name -> (min args, max args, implementation)
FUNCTIONS: dict[str, tuple[int, int, Callable[..., Any]]] = {
    "abs": (1, 1, pc.abs_checked),
    "cast": (2, 2, _cast),
    "ceil": (1, 1, pc.ceil),
    "coalesce": (1, 99, _coalesce),
    "concat": (1, 99, _concat),
    "contains": (2, 2, lambda v, s: pc.match_substring(v, pattern=s.as_py())),
    "date": (1, 1, _date),
    "day": (1, 1, pc.day),
    "floor": (1, 1, pc.floor),
    "hour": (1, 1, pc.hour),
    "if_else": (3, 3, pc.if_else),
    "is_not_null": (1, 1, pc.is_valid),
    "is_null": (1, 1, pc.is_null),
    "kv_lookup": (2, 2, kv_lookup),
    "length": (1, 1, pc.utf8_length),
    "list_len": (1, 1, pc.list_value_length),
    "list_sum": (1, 1, list_sum),
    "lower": (1, 1, pc.utf8_lower),
    "month": (1, 1, pc.month),
    "regex_match": (2, 2, _regex_match),
    "round": (1, 2, _round),
    "safe_divide": (2, 2, _safe_divide),
    "starts_with": (2, 2, lambda v, s: pc.starts_with(v, pattern=s.as_py())),
    "strftime": (2, 2, _strftime),
    "substr": (2, 3, _substr),
    "timestamp": (1, 1, _timestamp),
    "trim": (1, 1, pc.utf8_trim_whitespace),
    "upper": (1, 1, pc.utf8_upper),
    "year": (1, 1, pc.year),
}
