"""What a state document, path, filter and query may be: the rules both state adapters enforce, so the embedded
store refuses exactly what Firestore would (and a test that passes on SQLite does not fail on Firestore).

Values are JSON-native (str/int/float/bool/None/list/dict; ints within 64 bits, floats finite); keys are non-empty and
not `__reserved__`; paths alternate collection/document; filters compare scalars; `in` takes at most 30 values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from shared.ports.state import Filter

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_LEAVES = frozenset((str, bool, type(None)))
"""Exact types that need no further check (ints and floats do: range and finiteness)."""
_RESERVED = re.compile(r"^__.*__$")
_BAD_FIELD_CHARS = re.compile(r'["\\\x00-\x1f]')
_OPS = frozenset(("==", "!=", "<", "<=", ">", ">=", "in"))
INEQUALITY_OPS = frozenset(("!=", "<", "<=", ">", ">="))
MAX_IN_VALUES = 30
"""Firestore's limit on `in` values; enforced by both adapters."""


def _check_segment(segment: str, path: str) -> None:
    if not segment or segment in (".", "..") or _RESERVED.match(segment):
        raise ValueError(f"invalid path {path!r}: empty, '.', '..' or __reserved__ segment {segment!r}")


def split_doc_path(path: str) -> tuple[str, str]:
    """`runs/r1/stages/s1` -> (`runs/r1/stages`, `s1`). Document paths have an even number of segments."""
    parts = path.split("/")
    if len(parts) % 2:
        raise ValueError(f"{path!r} is not a document path (collection/id[/collection/id...])")
    for part in parts:
        _check_segment(part, path)
    return path[: -len(parts[-1]) - 1], parts[-1]


def check_collection_path(collection: str) -> None:
    """Collection paths have an odd number of segments: `runs`, `runs/r1/stages`."""
    parts = collection.split("/")
    if not len(parts) % 2:
        raise ValueError(f"{collection!r} is not a collection path (collection[/id/collection...])")
    for part in parts:
        _check_segment(part, collection)


def check_key(key: Any) -> None:
    """Map keys: non-empty strings, not `__reserved__` (Firestore's rules)."""
    if not isinstance(key, str):
        raise TypeError(f"document keys must be str, got {type(key).__name__} {key!r}")
    if not key or _RESERVED.match(key):
        raise ValueError(f"invalid document key {key!r}: empty or __reserved__")


def check_value(value: Any) -> None:
    """Raise unless `value` is JSON-native (see the module docstring).

    It runs on every write, so exact-type checks come first (~1 us for a small run document); subclasses such as
    StrEnum or IntEnum take the slower isinstance path and are stored as their plain values.
    """
    t = type(value)
    if t in _LEAVES:
        return
    if t is dict:
        for key, item in value.items():
            if type(key) is not str or not key or key[:2] == "__":
                check_key(key)
            if type(item) not in _LEAVES:
                check_value(item)
    elif t is list:
        for item in value:
            if type(item) not in _LEAVES:
                check_value(item)
    elif isinstance(value, (str, bool)):
        return
    elif isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"integer {value} does not fit in 64 bits")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"float {value} is not finite; JSON cannot hold it")
    elif isinstance(value, (list, dict)):
        check_value(list(value) if isinstance(value, list) else dict(value))
    else:
        raise TypeError(
            f"{t.__name__} is not a JSON-native value; the state store holds only "
            "str/int/float/bool/None/list/dict (store datetimes as ISO strings)"
        )


def check_doc(data: Any) -> None:
    if not isinstance(data, dict):
        raise TypeError(f"a document is a dict, got {type(data).__name__}")
    check_value(data)


def check_field_name(field: str) -> None:
    """A top-level key addressed by name (`increment`): also free of quotes, backslashes and control chars."""
    check_key(field)
    if _BAD_FIELD_CHARS.search(field):
        raise ValueError(f"field name {field!r} must not contain quotes, backslashes or control characters")


def field_segments(field_path: str) -> list[str]:
    """Split a dotted filter/order path into map keys, each a valid field name."""
    segments = field_path.split(".")
    for segment in segments:
        check_field_name(segment)
    return segments


def check_filter(flt: Filter) -> None:
    """Only scalar comparisons (and `in` over scalars) mean the same thing on SQLite and Firestore."""
    field_segments(flt.field)
    if flt.op not in _OPS:
        raise ValueError(f"unsupported filter op {flt.op!r}; use one of {sorted(_OPS)}")
    if flt.op == "in":
        if not isinstance(flt.value, (list, tuple)) or not 0 < len(flt.value) <= MAX_IN_VALUES:
            raise ValueError(f"'in' takes a non-empty list of at most {MAX_IN_VALUES} values")
        values: Sequence[Any] = flt.value
        if any(v is None for v in values):
            raise ValueError("'in' cannot match None (Firestore ignores it); use a separate == None filter")
    else:
        values = (flt.value,)
        if flt.value is None and flt.op not in ("==", "!="):
            raise ValueError(f"{flt.op!r} cannot compare with None")
    for v in values:
        if not (v is None or isinstance(v, (str, int, float))):
            raise TypeError(f"filter values must be str/int/float/bool/None, got {type(v).__name__}")
        check_value(v)


def check_query(order_by: str | None, descending: bool, limit: int | None) -> None:
    """`descending` needs `order_by`: the Firestore emulator cannot scan document ids in reverse."""
    if order_by is not None:
        field_segments(order_by)
    elif descending:
        raise ValueError("descending=True needs order_by (descending id order is not portable)")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be a non-negative int or None, got {limit!r}")
