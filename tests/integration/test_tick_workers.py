"""Schedule ticks on worker processes (shared/app/tick_workers.py): `cloudact schedule tick`'s path, fire_due, moves a
large slot's ticks to real worker processes; each slot is admitted once, its runs run and end, a worker that dies is
replaced and its tick redelivered, and what a worker publishes (a dead letter) reaches the runtime's bus."""

from __future__ import annotations

import fcntl
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.dead_letter_file import DeadLetterFile
from shared.adapters.sqlite_state import SqliteStateStore
from shared.app import tick_workers
from shared.app.embedded import dead_letter_file_path
from shared.contracts import topics
from shared.contracts.envelope import OutboundMessage
from shared.contracts.states import RunStatus
from shared.scheduling.local import fire_due, run_for_slot

PIPELINES = [f"slot_{i}" for i in range(6)]
AT = datetime(2026, 11, 25, 2, 45, tzinfo=UTC)
SLOT = datetime(2026, 11, 25, 2, 30, tzinfo=UTC)


@pytest.fixture
def due_pipelines(config_dir: Path, monkeypatch: Any) -> list[str]:
    """Six of testco's pipelines due at 02:30 UTC, and a worker per 3 ticks on a 2-CPU machine: two workers."""
    for pipeline_id in PIPELINES:
        (config_dir / "testco" / "pipelines" / f"{pipeline_id}.yaml").write_text(
            f'pipeline_id: {pipeline_id}\nschedule: {{cron: "30 2 * * *", timezone: UTC}}\n'
            "steps:\n  - {step_id: only, ps_type: debug.noop}\n"
        )
    monkeypatch.setattr(tick_workers, "TICKS_PER_PROCESS", 3)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    return PIPELINES


def _fired_runs(runtime: Any) -> list[dict[str, Any]]:
    runs = [run_for_slot(runtime.context, "testco", p, SLOT) for p in PIPELINES]
    assert all(runs), "every due pipeline has its slot's run"
    return [r for r in runs if r]


def test_a_slot_of_ticks_runs_on_worker_processes_once(make_runtime: Any, due_pipelines: list[str]) -> None:
    runtime = make_runtime()
    _, problems, drained = fire_due(runtime, AT, "testco", timeout=120)
    assert drained and not problems
    workers = runtime.tick_workers
    assert workers is not None and workers.processes == 2, "six ticks at three per worker: two worker processes"
    pids = {w.process.pid for w in workers._workers}
    assert len(pids) == 2 and os.getpid() not in pids
    runs = _fired_runs(runtime)
    assert {r["status"] for r in runs} == {RunStatus.SUCCEEDED}, "run.requested came back to this process and ran"
    again, _, _ = fire_due(runtime, AT, "testco", timeout=120)
    assert again and not [r for o in again for r in o.runs if r["new"]], "the same ticks again make no new run"
    assert [r["run_id"] for r in _fired_runs(runtime)] == [r["run_id"] for r in runs], "a second tick finds the same"


def test_a_dead_worker_is_replaced_and_its_tick_redelivered(make_runtime: Any, due_pipelines: list[str]) -> None:
    runtime = make_runtime()
    assert runtime.run_ticks_on_workers(len(PIPELINES)) == 2
    dead = [w.process for w in runtime.tick_workers._workers]
    for process in dead:
        process.kill()
        process.wait()
    _, problems, drained = fire_due(runtime, AT, "testco", timeout=120)
    assert drained and not problems
    assert {r["status"] for r in _fired_runs(runtime)} == {RunStatus.SUCCEEDED}
    assert runtime.bus.stats.nacked >= 1, "the tick sent to a dead worker was nacked, then redelivered"
    alive = {w.process.pid for w in runtime.tick_workers._workers}
    assert alive.isdisjoint({p.pid for p in dead}) and all(
        w.process.poll() is None for w in runtime.tick_workers._workers
    )


def test_what_a_worker_publishes_reaches_the_runtime_bus(make_runtime: Any, due_pipelines: list[str]) -> None:
    """An undecodable tick is dead-lettered by the entry point in the worker; the dead letter is published here."""
    runtime = make_runtime()
    assert runtime.run_ticks_on_workers(len(PIPELINES)) == 2
    runtime.bus.publish(topics.SCHEDULE_TICKS, [OutboundMessage(b"not a tick", {"tenant_id": "testco"})])
    assert runtime.wait_idle(60)
    letters = DeadLetterFile(dead_letter_file_path(runtime.settings)).peek_dead_letters(10)
    assert [letter.data for letter in letters] == [b"not a tick"]
    assert letters[0].attributes["cdp_source_function"] == "scheduled_trigger"


def test_ticks_stay_in_process_unless_two_workers_each_get_enough() -> None:
    per = tick_workers.TICKS_PER_PROCESS
    assert tick_workers.tick_processes_for(10_000, cpus=2) == 2
    assert tick_workers.tick_processes_for(10_000, cpus=8) == 5
    assert tick_workers.tick_processes_for(2 * per - 1, cpus=8) == 0
    assert tick_workers.tick_processes_for(2 * per, cpus=8) == 2
    assert tick_workers.tick_processes_for(10_000, cpus=1) == 0


def test_a_write_waits_for_another_process_holding_the_writer_lock(tmp_path: Path) -> None:
    """Writers of one state file queue on a blocking file lock (woken at once), not on SQLite's sleeping retries."""
    store = SqliteStateStore(tmp_path / "state.db")
    holder = os.open(tmp_path / "state.db.writer-lock", os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)  # as another process would hold it, mid-write
    written = threading.Event()
    writer = threading.Thread(target=lambda: (store.create("docs/a", {"n": 1}), written.set()))
    writer.start()
    try:
        assert not written.wait(0.5), "the write went ahead while another process held the writer lock"
        assert store.get("docs/a") is None
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
    writer.join(10)
    assert written.is_set() and store.get("docs/a") == {"n": 1}
    store.close()
