"""Firestore indexes, index exemptions and TTL policies of terraform/modules/platform/firestore.tf against the code.

The Firestore emulator serves any query without an index; production answers FAILED_PRECONDITION for a query that
needs a composite index nobody declared. So every ordered `.list(...)` in shared/ is found by reading the source
(ast), its filters are read from the same function, and each query shape it can issue must have its composite
index declared. Rules: https://cloud.google.com/firestore/docs/query-data/index-overview#composite_indexes
"""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.unit.test_terraform import MODULES, load_hcl, resources

SHARED = REPO / "shared"

# Every function of shared/ that lists a collection in order: (file, function) -> (collection, equality fields it
# may filter on, the ordered field, descending, whether it may leave out the tenant filter (operators' listings)).
ORDERED_LISTS: dict[tuple[str, str], tuple[str, set[str], str, bool]] = {
    ("shared/runs/store.py", "list_runs"): ("runs", {"tenant_id", "status", "pipeline_id"}, "created_at", True),
    ("shared/notify/delivery.py", "list_deliveries"): ("notifications", {"tenant_id", "status"}, "created_at", True),
    ("shared/tenancy/audit.py", "list_audit"): ("audit", {"tenant_id"}, "at", True),
    ("shared/tenancy/tenants.py", "list_tenants"): ("tenants", {"status"}, "tenant_id", False),
    ("shared/runs/stage_slots.py", "pump"): ("parked_stages", {"tenant_id"}, "parked_at", False),
    ("shared/runs/stage_slots.py", "sweep"): ("parked_stages", set(), "parked_at", False),  # a range on parked_at
}
# Always filtered on the tenant (no operator-wide form).
TENANT_ONLY = {"list_audit"}
# Filters of a branch that lists without order: equality filters only, served by merging single-field indexes
# (list_deliveries with a run_id sorts the run's handful of deliveries itself).
UNORDERED_FILTERS = {("shared/notify/delivery.py", "list_deliveries"): {"run_id"}}

TTL_COLLECTIONS = {
    "ratelimits",
    "claims",
    "idempotency",
    "runs",
    "stages",
    "snapshot",
    "arrivals",
    "events",
    "notifications",
    "audit",
    "dead_letters",
    "parked_stages",
}
# Collections written by a module that sets `expire_at`, which need no TTL: bounded, not growing with traffic.
NOT_EXPIRING = {"notification_cooldowns"}  # one per (tenant, rule, pipeline, event type, channel)


def _string(node: ast.AST, module: ast.Module) -> str | None:
    """A string literal, or a module-level NAME = "literal" it refers to."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        for stmt in module.body:
            if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == node.id for t in stmt.targets):
                return _string(stmt.value, module)
    return None


def ordered_list_calls() -> dict[tuple[str, str], tuple[str | None, list[str]]]:
    """(file, enclosing function) -> (collection, fields of every Filter(...) in that function) for each `.list(...)`
    call with an order (third positional argument or order_by=)."""
    found: dict[tuple[str, str], tuple[str | None, list[str]]] = {}
    for path in sorted(SHARED.rglob("*.py")):
        module = ast.parse(path.read_text())
        for func in ast.walk(module):
            if not isinstance(func, ast.FunctionDef):
                continue
            for call in ast.walk(func):
                if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
                    continue
                if call.func.attr != "list" or not call.args:
                    continue
                ordered = len(call.args) >= 3 or any(k.arg == "order_by" for k in call.keywords)
                if not ordered:
                    continue
                filters = [
                    _string(node.args[0], module) or "?"
                    for node in ast.walk(func)
                    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Filter"
                ]
                found[(str(path.relative_to(REPO)), func.name)] = (_string(call.args[0], module), filters)
    return found


@pytest.fixture(scope="module")
def platform() -> dict[str, Any]:
    return load_hcl(MODULES / "platform")


def declared_indexes(platform: dict[str, Any]) -> set[tuple[str, frozenset[str], tuple[str, str]]]:
    """(collection, equality fields, (ordered field, ASCENDING|DESCENDING)) of every composite index declared."""
    indexes = resources(platform, "google_firestore_index")
    assert set(indexes) == {"listing"}, "every composite index is an entry of google_firestore_index.listing"
    listing = indexes["listing"]
    (dynamic,) = listing["dynamic"]
    assert dynamic["fields"]["for_each"] == "${each.value.equality}"
    assert dynamic["fields"]["content"] == [{"field_path": "${fields.value}", "order": "ASCENDING"}]
    assert listing["fields"] == [{"field_path": "${each.value.order_by}", "order": "${each.value.direction}"}]
    assert listing["collection"] == "${each.value.collection}"
    out: set[tuple[str, frozenset[str], tuple[str, str]]] = set()
    for key, entry in listing["for_each"].items():
        assert key.startswith(f"{entry['collection']}/")
        out.add((entry["collection"], frozenset(entry["equality"]), (entry["order_by"], entry["direction"])))
    assert len(out) == len(listing["for_each"]), "two entries declare the same index"
    return out


def test_every_ordered_listing_of_the_code_is_known_here() -> None:
    calls = ordered_list_calls()
    assert set(calls) == set(ORDERED_LISTS), "a new ordered state.list(...): add it to ORDERED_LISTS and firestore.tf"
    for key, (collection, filters) in calls.items():
        expected_collection, equality, order_field, _ = ORDERED_LISTS[key]
        assert collection == expected_collection, key
        # Its filters are the equality fields, plus at most a range on the ordered field (served by the same index).
        assert set(filters) <= equality | {order_field} | UNORDERED_FILTERS.get(key, set()), f"{key}: {filters}"
        assert equality <= set(filters), f"{key}: ORDERED_LISTS names a filter the code no longer has"


def test_every_query_shape_has_its_composite_index(platform: dict[str, Any]) -> None:
    declared = declared_indexes(platform)
    needed = set()
    for (_, function), (collection, equality, order_field, descending) in ORDERED_LISTS.items():
        for size in range(1, len(equality) + 1):
            for fields in itertools.combinations(sorted(equality), size):
                if function in TENANT_ONLY and "tenant_id" not in fields:
                    continue
                needed.add((collection, frozenset(fields), (order_field, "DESCENDING" if descending else "ASCENDING")))
    missing = needed - declared
    assert not missing, f"query shapes without a composite index: {sorted(missing, key=str)}"
    assert declared - needed == set(), f"indexes no query uses: {declared - needed}"


def test_ttl_policies_on_expire_at_for_every_growing_collection(platform: dict[str, Any]) -> None:
    ttl = resources(platform, "google_firestore_field")["ttl"]
    listed = ttl["for_each"].removeprefix("${toset([").removesuffix("])}")
    assert {name.strip().strip('"') for name in listed.split(",")} == TTL_COLLECTIONS
    assert ttl["collection"] == "${each.value}" and ttl["field"] == "expire_at"
    assert ttl["ttl_config"] == [{}] and ttl["index_config"] == [{}]
    code = "\n".join(p.read_text() for p in SHARED.rglob("*.py"))
    for collection in TTL_COLLECTIONS:  # each is a collection (group) the code really writes
        assert re.search(rf"""f?["']{collection}/|["']{collection}["']|/{collection}["'/]""", code), collection


def _collections_written(module: ast.Module) -> set[str]:
    """Collections a module names in document paths: "name/..." literals, f"name/{...}" and f"{CONST}/{...}"."""
    consts = {
        target.id: node.value.value
        for node in module.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    names: set[str] = set()
    for node in ast.walk(module):
        head: str | None = None
        if isinstance(node, ast.JoinedStr) and node.values:
            first = node.values[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                head = first.value
            elif isinstance(first, ast.FormattedValue) and isinstance(first.value, ast.Name) and len(node.values) > 1:
                after = node.values[1]
                if isinstance(after, ast.Constant) and str(after.value).startswith("/"):
                    head = f"{consts.get(first.value.id, '')}/"
        elif isinstance(node, ast.BinOp) and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str):
            head = node.left.value
        match = re.match(r"^([a-z_]+)/", head or "")
        if match:
            names.add(match.group(1))
    return names


def test_every_collection_written_with_expire_at_has_a_ttl_policy() -> None:
    """A module that writes `expire_at` (expires_in / EXPIRE_AT) writes it for the collections it names."""
    expiring: set[str] = set()
    for path in sorted(SHARED.rglob("*.py")):
        if path.parent.name in ("ports", "adapters"):
            continue
        text = path.read_text()
        if "expires_in(" in text or "EXPIRE_AT" in text:
            expiring |= _collections_written(ast.parse(text))
    assert expiring, "no module writes expire_at"
    assert expiring - NOT_EXPIRING <= TTL_COLLECTIONS, f"no TTL policy for {expiring - NOT_EXPIRING - TTL_COLLECTIONS}"


def test_index_exemptions_name_fields_no_query_uses(platform: dict[str, Any]) -> None:
    exempt = resources(platform, "google_firestore_field")["unindexed"]
    assert exempt["index_config"] == [{}]
    assert exempt["collection"] == "${each.value.collection}" and exempt["field"] == "${each.value.field}"
    queried = {f for _, filters in ordered_list_calls().values() for f in filters}
    queried |= {order for _, _, order, _ in ORDERED_LISTS.values()}
    code = "\n".join(p.read_text() for p in SHARED.rglob("*.py"))
    filtered = set(re.findall(r'Filter\(\s*"([a-z_]+)"', code))
    for key, entry in exempt["for_each"].items():
        assert key == f"{entry['collection']}/{entry['field']}"
        assert entry["field"] not in queried | filtered, f"{key} is queried: it needs its index"
        assert f'"{entry["field"]}"' in code, f"{key}: the code writes no such field"
        assert entry["collection"] in TTL_COLLECTIONS


def test_firestore_declarations_live_in_firestore_tf() -> None:
    text = (MODULES / "platform" / "firestore.tf").read_text()
    assert text.count('resource "google_firestore_index"') == 1
    for path in Path(MODULES / "platform").glob("*.tf"):
        if path.name != "firestore.tf":
            assert "google_firestore_index" not in path.read_text() and "google_firestore_field" not in path.read_text()
