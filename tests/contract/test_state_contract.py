"""One behavioural contract for every StateStore adapter: what passes on SQLite must pass on Firestore.

The firestore parameter runs against the Firestore emulator (FIRESTORE_EMULATOR_HOST, started by
`scripts/emulators.sh start`), with a fresh project id per test so tests never see each other's documents.
Concurrency is kept small on Firestore where the emulator collapses under contention (see the port's docstring).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from uuid import uuid4

import pytest

from shared.adapters.sqlite_state import SqliteStateStore
from shared.ports.state import EXPIRE_AT, Filter, StateStore, expires_in
from tests.servers import server_missing

T = TypeVar("T")

EMULATOR_MISSING = (
    "Firestore emulator not running: run `make test` (starts it) or install with "
    "`gcloud components install cloud-firestore-emulator`"
)


@pytest.fixture(params=["sqlite", pytest.param("firestore", marks=pytest.mark.emulator)])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "firestore" and not os.environ.get("FIRESTORE_EMULATOR_HOST"):
        server_missing(EMULATOR_MISSING)
    return name


@pytest.fixture
def state_store(backend: str, tmp_path: Path) -> Iterator[StateStore]:
    store: StateStore
    if backend == "sqlite":
        store = SqliteStateStore(tmp_path / "state.sqlite3")
    else:
        from shared.adapters.firestore_state import FirestoreStateStore

        store = FirestoreStateStore(project=f"test-{uuid4().hex[:8]}")
    yield store
    store.close()


def run_concurrently(n: int, fn: Callable[[int], T]) -> list[T]:
    """Run fn(0..n-1) on n threads released together by a barrier, to maximise contention."""
    barrier = threading.Barrier(n)

    def task(i: int) -> T:
        barrier.wait(timeout=30)
        return fn(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(task, range(n)))


# ------------------------------------------------------------------------------------------------ basics


def test_get_missing_is_none(state_store: StateStore) -> None:
    assert state_store.get("runs/nope") is None
    assert state_store.get_versioned("runs/nope") is None


def test_set_get_round_trips_json_values(state_store: StateStore) -> None:
    doc = {
        "s": "héllo ✓",
        "i": 2**62,
        "neg": -7,
        "f": 1.5,
        "whole_float": 2.0,
        "t": True,
        "n": None,
        "list": [1, "two", None, {"x": [False]}],
        "map": {"nested": {"deep": "yes"}, "empty": {}},
        "a.b": "dotted key",
        "ü-key with space": 1,
    }
    state_store.set("runs/r1", doc)
    assert state_store.get("runs/r1") == doc
    got = state_store.get("runs/r1")
    assert got is not None and isinstance(got["whole_float"], float) and isinstance(got["i"], int)


def test_set_replaces_the_whole_document(state_store: StateStore) -> None:
    state_store.set("runs/r1", {"a": 1, "b": 2})
    state_store.set("runs/r1", {"c": 3})
    assert state_store.get("runs/r1") == {"c": 3}


def test_create_only_once(state_store: StateStore) -> None:
    assert state_store.create("claims/c1", {"owner": "w1"}) is True
    assert state_store.create("claims/c1", {"owner": "w2"}) is False
    assert state_store.get("claims/c1") == {"owner": "w1"}


def test_delete(state_store: StateStore) -> None:
    state_store.set("runs/r1", {"a": 1})
    state_store.delete("runs/r1")
    assert state_store.get("runs/r1") is None
    state_store.delete("runs/r1")  # deleting a missing document is a no-op
    assert state_store.create("runs/r1", {"a": 2}) is True


# ------------------------------------------------------------------------------------------------ update_if


def test_update_if_merges_top_level_fields_at_current_version(state_store: StateStore) -> None:
    state_store.set("runs/r1", {"status": "QUEUED", "meta": {"a": 1, "b": 2}, "keep": True})
    v1 = state_store.get_versioned("runs/r1")
    assert v1 is not None and isinstance(v1.version, str)
    assert state_store.update_if("runs/r1", {"status": "RUNNING", "meta": {"c": 3}}, v1.version) is True
    v2 = state_store.get_versioned("runs/r1")
    assert v2 is not None
    # Top-level merge: a nested map is replaced whole, untouched fields stay.
    assert v2.data == {"status": "RUNNING", "meta": {"c": 3}, "keep": True}
    assert v2.version != v1.version


def test_update_if_with_stale_version_changes_nothing(state_store: StateStore) -> None:
    state_store.set("runs/r1", {"status": "QUEUED"})
    stale = state_store.get_versioned("runs/r1")
    assert stale is not None
    assert state_store.update_if("runs/r1", {"status": "RUNNING"}, stale.version) is True
    assert state_store.update_if("runs/r1", {"status": "FAILED"}, stale.version) is False
    assert state_store.get("runs/r1") == {"status": "RUNNING"}


def test_update_if_missing_deleted_or_bogus_version_is_false(state_store: StateStore) -> None:
    state_store.set("runs/r1", {"n": 1})
    old = state_store.get_versioned("runs/r1")
    assert old is not None
    assert state_store.update_if("runs/missing", {"n": 2}, old.version) is False
    assert state_store.update_if("runs/r1", {"n": 2}, "not-a-version") is False
    state_store.delete("runs/r1")
    assert state_store.update_if("runs/r1", {"n": 2}, old.version) is False
    assert state_store.get("runs/r1") is None
    # Re-created at the same path: a version read before the delete must not match (no ABA).
    state_store.set("runs/r1", {"n": 1})
    assert state_store.update_if("runs/r1", {"n": 3}, old.version) is False


def test_update_if_keys_are_literal_not_field_paths(state_store: StateStore) -> None:
    state_store.set("runs/r1", {"a": {"b": 1}})
    v = state_store.get_versioned("runs/r1")
    assert v is not None
    fields = {"a.b": 2, "c-d": 3, "`tick`": 4, "ü": 5, "with space": 6}
    assert state_store.update_if("runs/r1", fields, v.version) is True
    assert state_store.get("runs/r1") == {"a": {"b": 1}, **fields}


def test_update_if_needs_fields(state_store: StateStore) -> None:
    state_store.set("runs/r1", {"n": 1})
    v = state_store.get_versioned("runs/r1")
    assert v is not None
    with pytest.raises(ValueError):
        state_store.update_if("runs/r1", {}, v.version)


# ------------------------------------------------------------------------------------------------ increment


def test_increment_creates_and_adds(state_store: StateStore) -> None:
    assert state_store.increment("counters/c1", "done") == 1
    assert state_store.get("counters/c1") == {"done": 1}
    state_store.set("counters/c2", {"done": 5, "other": "x"})
    before = state_store.get_versioned("counters/c2")
    assert state_store.increment("counters/c2", "done", 3) == 8
    assert state_store.increment("counters/c2", "done", -1) == 7
    assert state_store.increment("counters/c2", "failed", 2) == 2
    after = state_store.get_versioned("counters/c2")
    assert after is not None and before is not None
    assert after.data == {"done": 7, "other": "x", "failed": 2}
    assert after.version != before.version


def test_increment_replaces_non_numeric_values_and_keeps_floats(state_store: StateStore) -> None:
    state_store.set("counters/c1", {"s": "text", "b": True, "f": 1.5, "m": {"x": 1}})
    returned = [state_store.increment("counters/c1", field, 2) for field in ("s", "b", "f", "m")]
    assert returned == [2, 2, 3.5, 2]
    assert state_store.get("counters/c1") == {"s": 2, "b": 2, "f": 3.5, "m": 2}


def test_increment_field_is_one_literal_key(state_store: StateStore) -> None:
    state_store.increment("counters/c1", "a.b", 4)
    assert state_store.get("counters/c1") == {"a.b": 4}
    with pytest.raises(TypeError):
        state_store.increment("counters/c1", "n", 1.5)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ list


@pytest.fixture
def people(state_store: StateStore) -> StateStore:
    rows = {
        "a": {"name": "ann", "age": 30, "team": "red", "meta": {"level": 2}},
        "b": {"name": "bob", "age": 25, "team": "blue", "meta": {"level": 1}},
        "c": {"name": "cat", "age": 35.5, "team": "red", "meta": {"level": 3}},
        "d": {"name": "dan", "age": None, "team": "green"},
        "e": {"name": "eve", "team": "red"},
        "f": {"name": "fay", "age": "40", "team": "blue"},
        "g": {"name": "gus", "age": True, "team": "blue"},
    }
    for doc_id, doc in rows.items():
        state_store.set(f"people/{doc_id}", doc)
    state_store.set("people/a/pets/p1", {"team": "red"})  # a subcollection never shows in people
    return state_store


def ids(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [doc_id for doc_id, _ in rows]


def test_list_all_in_id_order(people: StateStore) -> None:
    rows = people.list("people")
    assert ids(rows) == ["a", "b", "c", "d", "e", "f", "g"]
    assert dict(rows)["a"]["meta"] == {"level": 2}


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (Filter("team", "==", "red"), ["a", "c", "e"]),
        (Filter("age", "==", 30), ["a"]),
        (Filter("age", "==", 30.0), ["a"]),
        (Filter("age", "==", True), ["g"]),
        (Filter("age", "==", "40"), ["f"]),
        (Filter("age", "==", None), ["d"]),
        (Filter("age", "!=", None), ["g", "b", "a", "c", "f"]),
        (Filter("age", "!=", 30), ["g", "b", "c", "f"]),
        (Filter("age", "<", 30), ["b"]),
        (Filter("age", "<=", 30), ["b", "a"]),
        (Filter("age", ">", 25), ["a", "c"]),
        (Filter("age", ">=", 25), ["b", "a", "c"]),
        (Filter("age", ">", "3"), ["f"]),
        (Filter("team", "in", ["blue", "green"]), ["b", "d", "f", "g"]),
        (Filter("age", "in", [25, "40"]), ["b", "f"]),
        (Filter("meta.level", ">=", 2), ["a", "c"]),
    ],
    ids=lambda v: f"{v.field}{v.op}{v.value!r}" if isinstance(v, Filter) else "",
)
def test_list_filters_are_typed_like_firestore(people: StateStore, flt: Filter, expected: list[str]) -> None:
    # Without order_by, inequality fields order first (null < bool < numbers < strings), then the id.
    assert ids(people.list("people", [flt])) == expected


def test_list_filters_and_order_and_limit(people: StateStore) -> None:
    red = [Filter("team", "==", "red")]
    assert ids(people.list("people", red, order_by="name", descending=True)) == ["e", "c", "a"]
    assert ids(people.list("people", red, order_by="name", descending=True, limit=2)) == ["e", "c"]
    # order_by skips documents without the field; explicit nulls sort first.
    assert ids(people.list("people", red, order_by="age")) == ["a", "c"]
    assert ids(people.list("people", [Filter("team", "==", "blue")], order_by="age")) == ["g", "b", "f"]
    both = [Filter("team", "==", "red"), Filter("age", ">", 0)]
    assert ids(people.list("people", both, order_by="age", descending=True)) == ["c", "a"]
    assert people.list("people", red, limit=0) == []


def test_list_ties_break_on_id_in_the_sort_direction(state_store: StateStore) -> None:
    for doc_id in ("x", "y", "z"):
        state_store.set(f"jobs/{doc_id}", {"prio": 1})
    state_store.set("jobs/w", {"prio": 2})
    assert ids(state_store.list("jobs", order_by="prio")) == ["x", "y", "z", "w"]
    assert ids(state_store.list("jobs", order_by="prio", descending=True)) == ["w", "z", "y", "x"]


def test_list_rejects_non_portable_queries(people: StateStore) -> None:
    with pytest.raises(ValueError):
        people.list("people", descending=True)
    with pytest.raises(ValueError):
        people.list("people", [Filter("age", "in", [None, 1])])
    with pytest.raises(ValueError):
        people.list("people", [Filter("age", "in", [])])
    with pytest.raises(ValueError):
        people.list("people", [Filter("age", "<", None)])
    with pytest.raises(TypeError):
        people.list("people", [Filter("age", "==", {"x": 1})])
    with pytest.raises(ValueError):
        people.list("people/a")


# ------------------------------------------------------------------------------------------------ paths


def test_subcollection_paths(state_store: StateStore) -> None:
    state_store.set("runs/r1", {"kind": "run"})
    state_store.set("runs/r1/stages/s1", {"kind": "stage", "n": 1})
    state_store.set("runs/r1/stages/s2", {"kind": "stage", "n": 2})
    state_store.set("runs/r2/stages/s1", {"kind": "other"})
    assert state_store.get("runs/r1/stages/s1") == {"kind": "stage", "n": 1}
    assert ids(state_store.list("runs")) == ["r1"]  # r2 has only a subcollection: no document
    assert ids(state_store.list("runs/r1/stages")) == ["s1", "s2"]
    state_store.delete("runs/r1")  # like Firestore, subcollections survive their parent
    assert state_store.get("runs/r1/stages/s2") == {"kind": "stage", "n": 2}
    assert state_store.create("idempotency/acme:abc123", {"run_id": "r1"}) is True


@pytest.mark.parametrize("bad", ["runs", "runs/r1/stages", "", "runs//x", "runs/__x__", "runs/.", "/runs/r1"])
def test_invalid_document_paths(state_store: StateStore, bad: str) -> None:
    with pytest.raises(ValueError):
        state_store.get(bad)
    with pytest.raises(ValueError):
        state_store.set(bad, {"a": 1})


# ------------------------------------------------------------------------------------------------ values


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (datetime(2026, 1, 1, tzinfo=UTC), TypeError),
        (b"bytes", TypeError),
        ((1, 2), TypeError),
        ({1, 2}, TypeError),
        (object(), TypeError),
        ({1: "int key"}, TypeError),
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        (2**64, ValueError),
        ({"": "empty key"}, ValueError),
        ({"__name__": "reserved key"}, ValueError),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, type) else v.__name__,
)
def test_only_json_native_values_are_accepted(state_store: StateStore, value: Any, error: type[Exception]) -> None:
    state_store.set("runs/r1", {"ok": 1})
    v = state_store.get_versioned("runs/r1")
    assert v is not None
    with pytest.raises(error):
        state_store.create("runs/r2", {"x": {"nested": [value]}})
    with pytest.raises(error):
        state_store.set("runs/r1", {"x": value})
    with pytest.raises(error):
        state_store.update_if("runs/r1", {"x": value}, v.version)
    assert state_store.get("runs/r2") is None
    assert state_store.get("runs/r1") == {"ok": 1}


# ------------------------------------------------------------------------------------------------ concurrency


@pytest.mark.timeout(120)
def test_concurrent_create_has_exactly_one_winner(state_store: StateStore, backend: str) -> None:
    n = 200 if backend == "sqlite" else 3
    results = run_concurrently(n, lambda i: state_store.create("claims/hot", {"owner": i}))
    assert results.count(True) == 1
    doc = state_store.get("claims/hot")
    assert doc is not None and doc["owner"] == results.index(True)


@pytest.mark.timeout(120)
def test_concurrent_update_if_has_exactly_one_winner(state_store: StateStore, backend: str) -> None:
    n = 200 if backend == "sqlite" else 3
    state_store.set("runs/r1", {"status": "QUEUED"})
    v = state_store.get_versioned("runs/r1")
    assert v is not None
    results = run_concurrently(n, lambda i: state_store.update_if("runs/r1", {"status": f"w{i}"}, v.version))
    assert results.count(True) == 1
    assert state_store.get("runs/r1") == {"status": f"w{results.index(True)}"}


@pytest.mark.timeout(120)
def test_concurrent_increments_are_exact(state_store: StateStore, backend: str) -> None:
    threads, per_thread = (200, 5) if backend == "sqlite" else (50, 2)

    def work(i: int) -> list[int | float]:
        return [state_store.increment("counters/hot", "n", 1) for _ in range(per_thread)]

    seen = [value for values in run_concurrently(threads, work) for value in values]
    assert state_store.get("counters/hot") == {"n": threads * per_thread}
    assert sorted(seen) == list(range(1, threads * per_thread + 1))  # each write saw its own position


# ------------------------------------------------------------------------------------------------ SQLite only


def test_sqlite_is_shared_across_connections_to_one_file(tmp_path: Path) -> None:
    """The CLI opens the same file from another process while workers write: each sees the other's commits."""
    a, b = SqliteStateStore(tmp_path / "s.db"), SqliteStateStore(tmp_path / "s.db")
    try:
        assert a.create("claims/c", {"by": "a"}) is True
        assert b.create("claims/c", {"by": "b"}) is False
        b.increment("counters/c", "n")
        a.increment("counters/c", "n")
        assert b.get("counters/c") == {"n": 2}
        v = a.get_versioned("claims/c")
        assert v is not None and b.update_if("claims/c", {"by": "b"}, v.version) is True
        assert a.update_if("claims/c", {"by": "a"}, v.version) is False
    finally:
        a.close()
        b.close()


def best_per_op_seconds(fn: Callable[[int], object], n: int = 500, rounds: int = 3) -> float:
    """Best of a few rounds: a noisy neighbour can slow one round, not the floor."""
    best = float("inf")
    for r in range(rounds):
        start = time.perf_counter()
        for i in range(n):
            fn(r * n + i)
        best = min(best, (time.perf_counter() - start) / n)
    return best


@pytest.mark.parametrize("in_memory", [True, False], ids=["memory", "file"])
def test_sqlite_warm_latency(tmp_path: Path, in_memory: bool) -> None:
    """Hot paths must stay under 0.2 ms (measured: get ~10 us, create ~50 us on disk, ~15 us in memory)."""
    target = ":memory:" if in_memory else tmp_path / "perf.db"
    store = SqliteStateStore(target)
    try:
        store.set("runs/warm", {"status": "QUEUED", "n": 1})
        create_s = best_per_op_seconds(lambda i: store.create(f"claims/c{i}", {"owner": "w", "i": i}))
        get_s = best_per_op_seconds(lambda i: store.get("runs/warm"))
        assert create_s < 0.0002, f"create took {create_s * 1e6:.0f} us on {target}"
        assert get_s < 0.0002, f"get took {get_s * 1e6:.0f} us on {target}"
    finally:
        store.close()


# ------------------------------------------------------------------------------------------------ expiry (TTL)


def test_expire_at_reads_back_as_written_and_firestore_holds_a_timestamp(backend: str, state_store: StateStore) -> None:
    """Firestore's TTL policies act only on Timestamp fields: the adapter stores `expire_at` as one, callers keep
    seeing the ISO string they wrote, whichever write wrote it (create, set, update_if, increment)."""
    base = datetime(2026, 11, 2, 12, 30, tzinfo=UTC)
    at, later = expires_in(30, base), expires_in(31, base)
    assert state_store.create("audit/a1", {"x": 1, EXPIRE_AT: at})
    state_store.set("audit/a2", {"x": 2, EXPIRE_AT: at})
    current = state_store.get_versioned("audit/a1")
    assert current is not None and current.data[EXPIRE_AT] == at
    assert state_store.update_if("audit/a1", {EXPIRE_AT: later}, current.version)
    assert state_store.increment("ratelimits/t:1:0", "count", expire_at=at) == 1
    assert state_store.increment("ratelimits/t:1:0", "count", expire_at=at) == 2
    assert state_store.get("audit/a1") == {"x": 1, EXPIRE_AT: later}
    assert state_store.get("ratelimits/t:1:0") == {"count": 2, EXPIRE_AT: at}
    assert dict(state_store.list("audit")) == {"a1": {"x": 1, EXPIRE_AT: later}, "a2": {"x": 2, EXPIRE_AT: at}}
    if backend == "firestore":
        client = state_store._client  # type: ignore[attr-defined]
        for path, expected in (("audit/a1", later), ("audit/a2", at), ("ratelimits/t:1:0", at)):
            stored = client.document(path).get().to_dict()[EXPIRE_AT]
            assert isinstance(stored, datetime) and stored == datetime.fromisoformat(expected)


def test_purge_expired_deletes_on_sqlite_and_leaves_it_to_the_ttl_policy_on_firestore(
    backend: str, state_store: StateStore
) -> None:
    now = datetime(2026, 11, 2, 12, tzinfo=UTC)
    state_store.create("claims/old", {EXPIRE_AT: expires_in(-1, now)})
    state_store.create("claims/fresh", {EXPIRE_AT: expires_in(1, now)})
    state_store.create("claims/kept", {"no": "expiry"})
    purged = state_store.purge_expired(expires_in(0, now))
    left = sorted(doc_id for doc_id, _ in state_store.list("claims"))
    if backend == "sqlite":
        assert (purged, left) == (1, ["fresh", "kept"])
    else:  # Firestore deletes expired documents itself, typically within 24 h: nothing is done (or promised) here
        assert (purged, left) == (0, ["fresh", "kept", "old"])
