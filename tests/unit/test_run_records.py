"""RunRecord / StageRecord: documents as the store holds them load and come back unchanged; the predicates' bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.sqlite_state import SqliteStateStore
from shared.clock import iso
from shared.contracts.messages import Trigger
from shared.contracts.state_paths import run_path, stage_path
from shared.contracts.states import RunStatus, StageStatus
from shared.pipelines.spec import StepSpec
from shared.runs.machine import TransitionRequest, transition, transition_run
from shared.runs.records import RunRecord, StageRecord
from shared.runs.store import create_run, new_stage_doc

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store() -> SqliteStateStore:
    return SqliteStateStore(":memory:")


def _stored_run_and_stage(store: SqliteStateStore) -> tuple[str, str]:
    run = create_run(store, "acme", "daily", {"run_date": "2026-05-01"}, Trigger(), idempotency_key="k1").doc
    step = StepSpec.model_validate({"step_id": "load", "ps_type": "debug.noop"})
    spath = stage_path(run["run_id"], "load")
    store.create(spath, new_stage_doc(run, step, iso(NOW)))
    transition_run(store, run["run_id"], RunStatus.RUNNING, deadline_at=iso(NOW + timedelta(hours=1)))
    transition(store, spath, TransitionRequest("stage", StageStatus.RUNNING, 1, fields={"lease_until": iso(NOW)}))
    return run_path(run["run_id"]), spath


def test_stored_documents_round_trip_byte_for_byte(store: SqliteStateStore) -> None:
    rpath, spath = _stored_run_and_stage(store)
    for path, record_type in ((rpath, RunRecord), (spath, StageRecord)):
        doc = store.get(path)
        assert doc is not None
        back = record_type.from_doc(doc).to_doc()
        assert back == doc and list(back) == list(doc)  # same keys, same order, same values
        assert all(type(back[k]) is type(doc[k]) for k in doc)  # the status comes back a plain str


def test_fields_are_typed_and_unknown_keys_are_kept(store: SqliteStateStore) -> None:
    rpath, spath = _stored_run_and_stage(store)
    run_doc, stage_doc = store.get(rpath), store.get(spath)
    assert run_doc is not None and stage_doc is not None
    run = RunRecord.from_doc({**run_doc, "added_by_a_newer_version": [1, 2]})
    assert run.status is RunStatus.RUNNING and run.tenant_id == "acme" and run.idempotency_key == "k1"
    assert run.extra == {"added_by_a_newer_version": [1, 2]}
    assert run.to_doc()["added_by_a_newer_version"] == [1, 2]
    stage = StageRecord.from_doc(stage_doc)
    assert stage.status is StageStatus.RUNNING and stage.attempt == 1 and stage.extra == {}


def test_unknown_status_and_missing_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="RUNING"):
        StageRecord.from_doc({"stage_id": "a", "status": "RUNING"})
    with pytest.raises(ValueError, match="SKIPPED"):  # a stage status a run never has
        RunRecord.from_doc({"run_id": "r", "status": "SKIPPED"})
    with pytest.raises(ValueError, match="status"):
        RunRecord.from_doc({"run_id": "r"})


def _stage(**fields: object) -> StageRecord:
    return StageRecord.from_doc({"stage_id": "a", **fields})


def test_lease_is_active_strictly_before_lease_until() -> None:
    held = _stage(status="RUNNING", lease_until=iso(NOW))
    assert held.lease_active(NOW - timedelta(microseconds=1)) and not held.lease_expired(NOW - timedelta(seconds=1))
    assert not held.lease_active(NOW) and held.lease_expired(NOW)
    assert not _stage(status="QUEUED", lease_until=iso(NOW)).lease_active(NOW - timedelta(seconds=5))
    unleased = _stage(status="RUNNING")
    assert not unleased.lease_active(NOW) and not unleased.lease_expired(NOW)


def test_backoff_holds_a_queued_stage_until_not_before() -> None:
    waiting = _stage(status="QUEUED", not_before=iso(NOW))
    assert waiting.in_backoff(NOW - timedelta(milliseconds=1)) and not waiting.in_backoff(NOW)
    assert waiting.backoff_left(NOW - timedelta(seconds=2)) == pytest.approx(2.0)
    assert not _stage(status="QUEUED").in_backoff(NOW)
    assert not _stage(status="RUNNING", not_before=iso(NOW)).in_backoff(NOW - timedelta(seconds=5))


def test_terminal_deadline_and_finalisation() -> None:
    assert _stage(status="SKIPPED").is_terminal and not _stage(status="RUNNING").is_terminal
    run = RunRecord.from_doc({"run_id": "r", "status": "FAILED", "deadline_at": iso(NOW), "finalized": False})
    assert run.is_terminal and run.finalize_pending and run.past_deadline(NOW + timedelta(seconds=1))
    assert not run.past_deadline(NOW) and not RunRecord.from_doc({"run_id": "r", "status": "QUEUED"}).past_deadline(NOW)


def test_a_job_chain_is_stale_once_its_last_round_is_older_than_the_bound() -> None:
    polled = _stage(status="RUNNING", job_id="j1", polled_at=iso(NOW))
    assert not polled.poll_stale(NOW + timedelta(seconds=30), after_s=30.0)
    assert polled.poll_stale(NOW + timedelta(seconds=30, milliseconds=1), after_s=30.0)
    assert _stage(status="RUNNING", job_id="j1").poll_stale(NOW, after_s=30.0)  # never polled
