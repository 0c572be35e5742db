"""The one guarded transition(): rule table, attempt ownership, compare-and-set under races."""

from __future__ import annotations

import itertools
import threading

import pytest

from shared.adapters.sqlite_state import SqliteStateStore
from shared.contracts.states import RUN_TRANSITIONS, STAGE_TRANSITIONS, TERMINAL, RunStatus, StageStatus
from shared.runs.machine import Kind, TransitionRequest, transition


@pytest.fixture
def store() -> SqliteStateStore:
    return SqliteStateStore(":memory:")


def test_run_lifecycle_and_terminal_states_are_final(store: SqliteStateStore) -> None:
    store.set("runs/r1", {"run_id": "r1", "status": "QUEUED"})
    assert transition(store, "runs/r1", TransitionRequest("run", "SUCCEEDED")).applied is False  # must run first
    started = transition(store, "runs/r1", TransitionRequest("run", "RUNNING"))
    assert started.applied and started.doc["started_at"]
    done = transition(store, "runs/r1", TransitionRequest("run", "SUCCEEDED", fields={"error": None}))
    assert done.applied and done.doc["duration_ms"] >= 0 and done.doc["ended_at"]
    for target in ("RUNNING", "FAILED", "QUEUED", "CANCELLED"):
        refused = transition(store, "runs/r1", TransitionRequest("run", target))
        assert not refused.applied and refused.status == "SUCCEEDED"


def test_rule_tables_have_no_exit_from_terminal_states() -> None:
    for table in (RUN_TRANSITIONS, STAGE_TRANSITIONS):
        assert not set(table) & TERMINAL


def test_only_the_attempt_holding_a_stage_can_finish_it(store: SqliteStateStore) -> None:
    store.set("s/a", {"status": "QUEUED", "attempt": 0})
    assert transition(store, "s/a", TransitionRequest("stage", "RUNNING", 1, fields={"attempt": 1})).applied
    stale = transition(store, "s/a", TransitionRequest("stage", "SUCCEEDED", attempt=2))
    assert not stale.applied and "does not hold" in stale.reason
    assert not transition(store, "s/a", TransitionRequest("stage", "RUNNING", 1)).applied  # no self take-over
    assert transition(store, "s/a", TransitionRequest("stage", "RUNNING", 2, fields={"attempt": 2})).applied
    assert not transition(store, "s/a", TransitionRequest("stage", "SUCCEEDED", attempt=1)).applied
    assert transition(store, "s/a", TransitionRequest("stage", "SUCCEEDED", attempt=2)).applied


def test_only_from_narrows_the_rules(store: SqliteStateStore) -> None:
    store.set("s/b", {"status": "RUNNING", "attempt": 1})
    assert not transition(
        store, "s/b", TransitionRequest("stage", "CANCELLED", only_from=frozenset({"QUEUED"}))
    ).applied


def test_missing_document_is_reported_not_raised(store: SqliteStateStore) -> None:
    result = transition(store, "runs/ghost", TransitionRequest("run", "RUNNING"))
    assert not result.applied and result.status == "MISSING"


def test_racing_finishers_exactly_one_wins(store: SqliteStateStore) -> None:
    for i in range(20):
        store.set(f"runs/x{i}", {"status": "RUNNING"})
    wins: list[str] = []
    lock = threading.Lock()

    def finish(path: str, to: str) -> None:
        if transition(store, path, TransitionRequest("run", to)).applied:
            with lock:
                wins.append(path)

    threads = [
        threading.Thread(target=finish, args=(f"runs/x{i}", to))
        for i in range(20)
        for to in ("SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == sorted(f"runs/x{i}" for i in range(20))


def _every_pair() -> list[tuple[Kind, str, str]]:
    runs = [("run", a, b) for a, b in itertools.product(RunStatus, RunStatus)]
    stages = [("stage", a, b) for a, b in itertools.product(StageStatus, StageStatus)]
    return [(kind, str(a), str(b)) for kind, a, b in (*runs, *stages)]


@pytest.mark.parametrize(("kind", "current", "target"), _every_pair())
def test_every_status_pair_moves_exactly_when_the_table_allows_it(
    store: SqliteStateStore, kind: Kind, current: str, target: str
) -> None:
    """All 36 run and 49 stage pairs: the table's moves apply (and stamp the document), every other one is refused
    with a reason and leaves the document as it was."""
    table = RUN_TRANSITIONS if kind == "run" else STAGE_TRANSITIONS
    allowed = target in table.get(current, frozenset())
    path = f"things/{kind}"
    store.set(path, {"status": current, "attempt": 1, "started_at": "2026-05-01T12:00:00.000000+00:00"})
    before = store.get_versioned(path)
    status_type = RunStatus if kind == "run" else StageStatus
    result = transition(store, path, TransitionRequest(kind, status_type(target)))
    after = store.get_versioned(path)
    assert before is not None and after is not None
    assert result.applied is allowed, result.reason
    if allowed:
        assert result.status == target and after.data["status"] == target and result.reason == ""
        assert after.data["updated_at"] and after.version != before.version
        assert bool(after.data.get("ended_at")) is (target in TERMINAL)
    else:
        assert result.status == current and f"from {current} to {target}" in result.reason
        assert after.data == before.data and after.version == before.version
