"""Index audit: every Firestore query shape the code issues against the composite indexes Terraform declares.

Rules (https://cloud.google.com/firestore/docs/query-data/index-overview, .../query-data/multiple-range-fields,
.../query-data/queries#query_limitations):
- Automatic single-field indexes serve: equality filters only (on any number of fields: Firestore merges single-field
  indexes for equalities), or a range/inequality filter and/or order on ONE field (either direction) with no equality.
- Anything else needs a composite index: equalities combined with a range or an order on another field; range or
  order on more than one field. The index holds the equality fields first (any order), then the range/order fields in
  the query's order and directions. Firestore can also merge composite indexes that share the same range/order suffix
  to serve more equalities: each equality field must be covered by some index whose fields are a subset of the query's
  equalities followed by that suffix.
- `in` counts as an equality for indexing; `!=` and `not-in` are inequalities (range).
- A single-field exemption (google_firestore_field with an empty `index_config`) removes the automatic index: a query
  that needs it on that field fails.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reliability.parity import terraform as tf
from reliability.parity.hcl import Unsupported

GROUP = " (collection group)"
"""Suffix of a collection-group query's collection, and of an index with query_scope COLLECTION_GROUP: only those
serve each other."""
EQUALITY = {"EQUAL", "IN", "==", "in", "ARRAY_CONTAINS", "array-contains", "IS_NULL", "IS_NAN"}
RANGE = {"LESS_THAN", "LESS_THAN_OR_EQUAL", "GREATER_THAN", "GREATER_THAN_OR_EQUAL", "NOT_EQUAL", "NOT_IN"}
RANGE |= {"IS_NOT_NULL", "IS_NOT_NAN"}  # `!= null` is an inequality
RANGE |= {"<", "<=", ">", ">=", "!=", "not-in"}


@dataclass(frozen=True)
class Shape:
    collection: str
    equalities: tuple[str, ...]  # sorted field paths
    sort: tuple[tuple[str, str], ...]  # range/order fields in order, with direction
    source: str = ""

    def describe(self) -> str:
        where = " AND ".join(f"{f} ==" for f in self.equalities)
        order = ", ".join(f"{f} {'desc' if d == 'DESCENDING' else 'asc'}" for f, d in self.sort)
        return f"{self.collection}[{where}{' ORDER ' + order if order else ''}]"


def shape_of(
    collection: str, filters: Iterable[Sequence[str]], order: Iterable[Sequence[str]], source: str = ""
) -> Shape:
    """Equality fields, then the range/order fields in Firestore's order: an inequality field is ordered first
    (ascending unless the query orders it), then the explicit orders."""
    eq = sorted({f for f, op in filters if op in EQUALITY})
    ranges = [f for f, op in filters if op in RANGE]
    unknown = [op for _, op in filters if op not in EQUALITY and op not in RANGE]
    if unknown:
        raise ValueError(f"unknown filter operator(s) {unknown}")
    sort: list[tuple[str, str]] = []
    explicit = [(f, d) for f, d in order if f != "__name__"]
    for field in ranges:
        if field not in [s for s, _ in sort]:
            direction = next((d for f, d in explicit if f == field), "ASCENDING")
            sort.append((field, direction))
    for field, direction in explicit:
        if field not in [s for s, _ in sort] and field not in eq:
            sort.append((field, direction))
    return Shape(collection, tuple(eq), tuple(sort), source)


def needs_composite(shape: Shape) -> bool:
    return len(shape.sort) > 1 or (bool(shape.equalities) and bool(shape.sort))


@dataclass(frozen=True)
class Index:
    address: str
    collection: str
    fields: tuple[tuple[str, str], ...]  # (field_path, ASCENDING|DESCENDING|CONTAINS)


def served_by(shape: Shape, indexes: Iterable[Index]) -> list[Index]:
    """The declared indexes that (together) serve `shape`; [] when it needs one that is missing."""
    suffix = len(shape.sort)
    usable: list[Index] = []
    for index in indexes:
        if index.collection != shape.collection or len(index.fields) < suffix:
            continue
        head, tail = index.fields[: len(index.fields) - suffix], index.fields[len(index.fields) - suffix :]
        if tuple(tail) != shape.sort:
            continue
        head_fields = {f for f, _ in head}
        if len(head_fields) == len(head) and head_fields <= set(shape.equalities):
            usable.append(index)
    covered = {f for index in usable for f, _ in index.fields[: len(index.fields) - suffix]}
    if (
        set(shape.equalities) <= covered
        and usable
        and (shape.equalities or any(len(i.fields) == suffix for i in usable))
    ):
        return usable
    return []


def declared_indexes(root: tf.Module) -> tuple[list[Index], list[str]]:
    out: list[Index] = []
    problems: list[str] = []
    for inst in tf.every_instance(root, "google_firestore_index"):
        try:
            scope = str(inst.attrs.get("query_scope", "COLLECTION"))
            fields = [
                (str(f["field_path"]), str(f.get("order") or ("CONTAINS" if f.get("array_config") else "")))
                for f in tf.dynamic_blocks(inst.attrs, "fields")
            ]
            out.append(
                Index(
                    inst.address,
                    str(inst.attrs["collection"]) + (GROUP if scope == "COLLECTION_GROUP" else ""),
                    tuple(fields),
                )
            )
        except (Unsupported, KeyError, TypeError) as exc:
            problems.append(f"{inst.address}: cannot evaluate ({exc})")
    return out, problems


def exempted_fields(root: tf.Module) -> tuple[set[tuple[str, str]], list[str]]:
    """(collection, field) pairs whose automatic single-field indexes are switched off."""
    out: set[tuple[str, str]] = set()
    problems: list[str] = []
    for inst in tf.every_instance(root, "google_firestore_field"):
        try:
            config = inst.attrs.get("index_config")
            blocks = config if isinstance(config, list) else [config] if config is not None else []
            if blocks and not any(b.get("indexes") for b in blocks if isinstance(b, Mapping)):
                out.add((str(inst.attrs["collection"]), str(inst.attrs["field"])))
        except (Unsupported, KeyError, TypeError) as exc:
            problems.append(f"{inst.address}: cannot evaluate ({exc})")
    return out, problems


def recorded_shapes(audit_dir: Path) -> list[Shape]:
    shapes: dict[tuple[Any, ...], Shape] = {}
    for path in sorted(audit_dir.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            query = record.get("query")
            if not isinstance(query, dict):
                continue
            collection = query["collection"] + (GROUP if query.get("all_descendants") else "")
            shape = shape_of(collection, query["filters"], query["order"], f"recorded in {record['function']}")
            shapes.setdefault((shape.collection, shape.equalities, shape.sort), shape)
    return list(shapes.values())


def static_shapes(repo: Path) -> tuple[list[Shape], list[str]]:
    """`.list(collection, [Filter(field, op, _), ...], order_by, descending, ...)` call sites with literal arguments;
    the others (filters built at run time) are listed as dynamic: the recording covers them."""
    shapes: list[Shape] = []
    dynamic: list[str] = []
    for path in sorted([*(repo / "shared").rglob("*.py"), *(repo / "functions").rglob("*.py")]):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "list"):
                continue
            receiver = ast.unparse(node.func.value)
            if not receiver.endswith("state") and receiver not in ("store",):
                continue
            where = f"{path.relative_to(repo)}:{node.lineno}"
            try:
                shapes.append(_literal_shape(node, where))
            except ValueError:
                dynamic.append(where)
    return shapes, dynamic


def _literal_shape(node: ast.Call, where: str) -> Shape:
    args = list(node.args)
    kwargs = {k.arg: k.value for k in node.keywords if k.arg}
    collection = args[0] if args else kwargs.get("collection")
    if isinstance(collection, ast.Constant) and isinstance(collection.value, str):
        name = collection.value
    elif isinstance(collection, (ast.JoinedStr, ast.Call)):
        name = _last_segment(collection)
    else:
        raise ValueError("dynamic collection")
    filters_node = args[1] if len(args) > 1 else kwargs.get("filters")
    filters: list[tuple[str, str]] = []
    if filters_node is not None:
        if not isinstance(filters_node, (ast.List, ast.Tuple)):
            raise ValueError("dynamic filters")
        for item in filters_node.elts:
            if not (isinstance(item, ast.Call) and len(item.args) >= 2):
                raise ValueError("dynamic filter")
            field, op = item.args[0], item.args[1]
            if not (isinstance(field, ast.Constant) and isinstance(op, ast.Constant)):
                raise ValueError("dynamic filter")
            filters.append((str(field.value), str(op.value)))
    order_node = args[2] if len(args) > 2 else kwargs.get("order_by")
    desc_node = args[3] if len(args) > 3 else kwargs.get("descending")
    order: list[tuple[str, str]] = []
    if order_node is not None and not (isinstance(order_node, ast.Constant) and order_node.value is None):
        if not isinstance(order_node, ast.Constant):
            raise ValueError("dynamic order")
        descending = isinstance(desc_node, ast.Constant) and bool(desc_node.value)
        order.append((str(order_node.value), "DESCENDING" if descending else "ASCENDING"))
    return shape_of(name, filters, order, where)


def _last_segment(node: ast.AST) -> str:
    """`f"tenants/{t}/secrets"` -> `secrets`; `stages_collection(run_id)` -> `stages` (the id indexes name)."""
    if isinstance(node, ast.JoinedStr):
        tail = node.values[-1]
        if isinstance(tail, ast.Constant) and isinstance(tail.value, str) and "/" in tail.value:
            return tail.value.rsplit("/", 1)[-1]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.endswith("_collection"):
        return node.func.id.removesuffix("_collection")
    raise ValueError("dynamic collection")


@dataclass
class IndexReport:
    shapes: list[Shape]
    needing: list[Shape]
    missing: list[Shape]
    exempted_hits: list[str]
    dynamic_sites: list[str]
    problems: list[str]
    serving: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.exempted_hits or self.problems)

    def line(self) -> str:
        declared = "all declared" if not self.missing else f"{len(self.missing)} MISSING"
        return (
            f"indexes: {len(self.shapes)} query shapes, {len(self.needing)} need composite indexes, {declared}"
            + (f"; {len(self.exempted_hits)} on exempted fields" if self.exempted_hits else "")
            + (f"; {len(self.problems)} problems" if self.problems else "")
        )

    def details(self) -> list[str]:
        out = [
            f"  composite {s.describe()} served by {', '.join(self.serving.get(s.describe(), []))}"
            for s in self.needing
            if s not in self.missing
        ]
        for s in self.missing:
            fields = ", ".join([f"{f} ASCENDING" for f in s.equalities] + [f"{f} {d}" for f, d in s.sort])
            out.append(f"  MISSING google_firestore_index collection={s.collection} fields=[{fields}] ({s.source})")
        out += [f"  EXEMPTED {e}" for e in self.exempted_hits]
        out += [f"  PROBLEM {p}" for p in self.problems]
        return out


def audit(
    shapes: Iterable[Shape], indexes: Sequence[Index], exempt: set[tuple[str, str]], problems: Sequence[str]
) -> IndexReport:
    unique: dict[tuple[Any, ...], Shape] = {}
    for s in shapes:
        unique.setdefault((s.collection, s.equalities, s.sort), s)
    all_shapes = list(unique.values())
    needing = [s for s in all_shapes if needs_composite(s)]
    missing = [s for s in needing if not served_by(s, indexes)]
    hits = []
    for s in all_shapes:
        if needs_composite(s):
            continue
        for field in [*s.equalities, *(f for f, _ in s.sort)]:
            if (s.collection, field) in exempt:
                hits.append(
                    f"{s.describe()} needs the automatic index of {s.collection}.{field}, exempted ({s.source})"
                )
    serving = {s.describe(): [i.address for i in served_by(s, indexes)] for s in needing}
    return IndexReport(all_shapes, needing, missing, hits, [], list(problems), serving)
