"""BigQuery job-completion events on the embedded runtime (shared/runs/job_events.py): the audit log entry of a
stage's job, published to cdp-job-events as the Cloud Logging sink would, ends the stage in one round although its
re-check chain broke; duplicates, late events, other jobs' events and malformed entries change nothing and are acked.

The embedded runtime has no audit log (its jobs finish through the re-check chain): here the test plays the sink.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import shared.runs.stage_jobs as stage_jobs
from shared.clock import utc_now
from shared.contracts import topics
from shared.contracts.envelope import OutboundMessage
from shared.contracts.state_paths import stage_path
from shared.processors.debug_job import job_path
from shared.processors.jobs import stage_job_id
from tests.conftest import execute, wait_for
from tests.job_event_entries import completion_entry, stage_job_labels

TENANT = "jobco"
JOB_S = 2


@pytest.fixture
def job_config(config_dir: Path) -> Path:
    folder = config_dir / TENANT / "pipelines"
    folder.mkdir(parents=True)
    (config_dir / TENANT / "tenant.yaml").write_text(f"tenant_id: {TENANT}\nname: Jobs\nplan: enterprise\n")
    (folder / "short_job.yaml").write_text(
        "pipeline_id: short_job\nsteps:\n"
        f"  - {{step_id: q, ps_type: debug.job, config: {{duration_s: {JOB_S}, rows: 7}}}}\n"
        "  - {step_id: after, ps_type: debug.noop, depends_on: [q]}\n"
    )
    return config_dir


@pytest.fixture
def broken_chain(monkeypatch: Any) -> list[int | None]:
    """Rounds of 0.3 s, and round 0's re-check is lost (its worker died after the round): nobody polls the job any
    more, and the watchdog would take the chain over only after STALE_AFTER_S (35 s)."""
    monkeypatch.setattr(stage_jobs, "POLL_WINDOW_S", 0.3)
    real = stage_jobs.publish_stage_tasks  # type: ignore[attr-defined]
    dropped: list[int | None] = []

    def lose_first_recheck(bus: Any, run: Any, ids: Any, poll_seq: int | None = None) -> None:
        if poll_seq is not None and not dropped:
            dropped.append(poll_seq)
            return
        real(bus, run, ids, poll_seq=poll_seq)

    monkeypatch.setattr(stage_jobs, "publish_stage_tasks", lose_first_recheck)
    return dropped


def _publish(runtime: Any, entry: Any) -> None:
    data = entry if isinstance(entry, bytes) else json.dumps(entry).encode()
    runtime.bus.publish(topics.JOB_EVENTS, [OutboundMessage(data)])


def _stage(runtime: Any, run_id: str) -> dict[str, Any]:
    return dict(runtime.context.state.get(stage_path(run_id, "q")))


def _stalled_job_stage(runtime: Any) -> tuple[str, str]:
    """A run whose job stage lost its re-check chain, waited on until its job has finished: (run id, job id)."""
    run_id = execute(runtime, TENANT, "short_job").body["run_id"]
    assert runtime.wait_idle(30)
    job_id = stage_job_id(run_id, "q", 1)
    job = runtime.context.state.get(job_path(job_id))
    ends = datetime.fromisoformat(job["submitted_at"]).timestamp() + JOB_S
    time.sleep(max(0.0, ends - utc_now().timestamp()) + 0.3)
    stage = _stage(runtime, run_id)
    assert (stage["status"], stage["poll_seq"], stage["round_ended"]) == ("RUNNING", 0, 0)  # the job is done; unseen
    return run_id, job_id


def _completion(runtime: Any, run_id: str, job_id: str, **labels: str) -> dict[str, Any]:
    tagged = {**stage_job_labels(TENANT, "short_job", run_id, "q", 1), **labels}
    return completion_entry(runtime.settings.project, job_id, tagged)


def test_a_completion_event_ends_a_stalled_job_stage_in_one_round(
    job_config: Path, make_runtime: Any, broken_chain: list[int | None]
) -> None:
    runtime = make_runtime()
    run_id, job_id = _stalled_job_stage(runtime)
    assert broken_chain == [1]
    _publish(runtime, _completion(runtime, run_id, job_id))
    wait_for(lambda: _stage(runtime, run_id)["status"] == "SUCCEEDED", timeout=10)
    assert runtime.wait_idle(30)
    stage = _stage(runtime, run_id)
    assert stage["poll_seq"] == 1 and stage["rows_out"] == 7  # one round, claimed by the event's re-check
    assert [a["status"] for a in stage["attempts"]] == ["SUCCEEDED"]
    assert runtime.context.state.get(stage_path(run_id, "after"))["status"] == "SUCCEEDED"
    assert runtime.context.state.get(f"{job_path(job_id)}_submits")["calls"] == 1


def test_duplicate_and_late_events_change_nothing(
    job_config: Path, make_runtime: Any, broken_chain: list[int | None]
) -> None:
    runtime = make_runtime(duplicate_deliveries=2)  # the event too is delivered twice
    run_id, job_id = _stalled_job_stage(runtime)
    event = _completion(runtime, run_id, job_id)
    for _ in range(3):
        _publish(runtime, event)
    wait_for(lambda: _stage(runtime, run_id)["status"] == "SUCCEEDED", timeout=10)
    assert runtime.wait_idle(30)
    ended = _stage(runtime, run_id)
    nacked = runtime.bus.stats.nacked
    _publish(runtime, event)  # late: the stage has ended
    _publish(runtime, completion_entry(runtime.settings.project, job_id, {}, error="Query error: late and odd"))
    assert runtime.wait_idle(30)
    assert _stage(runtime, run_id) == ended and ended["poll_seq"] == 1
    assert [a["status"] for a in ended["attempts"]] == ["SUCCEEDED"]
    assert runtime.bus.stats.nacked == nacked  # acked, never retried
    assert runtime.context.state.get(f"{job_path(job_id)}_submits")["calls"] == 1


def test_events_of_other_jobs_and_malformed_entries_are_acked_and_do_nothing(
    job_config: Path, make_runtime: Any, broken_chain: list[int | None]
) -> None:
    runtime = make_runtime()
    run_id, job_id = _stalled_job_stage(runtime)
    project = runtime.settings.project
    before = (runtime.bus.stats.nacked, runtime.bus.stats.dead_lettered)
    assert runtime.bus.peek_dead_letters(100) == []
    _publish(runtime, completion_entry(project, "bquxjob_5e1f2a3b_18c0d1e2f3a", {"app": "cdp"}))  # not ours
    _publish(runtime, completion_entry("another-project", job_id, {}))  # our id, another project's job
    _publish(runtime, _completion(runtime, run_id, stage_job_id(run_id, "q", 2), attempt="2"))  # not recorded yet
    _publish(runtime, _completion(runtime, run_id, job_id, tenant="acme"))  # labelled with another tenant
    _publish(runtime, b"{not json")
    _publish(runtime, {"insertId": "x", "textPayload": "a log line that is not an audit entry"})
    assert runtime.wait_idle(30)
    stage = _stage(runtime, run_id)
    assert (stage["status"], stage["poll_seq"]) == ("RUNNING", 0)
    assert runtime.bus.stats.nacked == before[0]  # nothing retried
    assert runtime.bus.stats.dead_lettered == before[1]  # no delivery ran out
    letters = runtime.bus.peek_dead_letters(100)  # the two that do not fit, put there once by the handler
    assert [(d.attributes["cdp_source_function"], d.attributes["cdp_source_topic"]) for d in letters] == [
        ("stage_worker", topics.JOB_EVENTS)
    ] * 2
    reasons = " | ".join(d.attributes["cdp_dead_letter_reason"] for d in letters)
    assert "not JSON" in reasons and "JobLogEntry" in reasons and "protoPayload" in reasons, reasons
    _publish(runtime, _completion(runtime, run_id, job_id))  # the stage's own event still ends it
    wait_for(lambda: _stage(runtime, run_id)["status"] == "SUCCEEDED", timeout=10)


@pytest.fixture
def on_events(job_config: Path, settings: Any, monkeypatch: Any) -> Iterator[Any]:
    """Events wired as on GCP, waited for from the first round on (job_events_after_s 0), in rounds of 0.3 s."""
    from shared.app import embedded

    monkeypatch.setattr(stage_jobs, "POLL_WINDOW_S", 0.3)
    runtime = embedded.start(dataclasses.replace(settings, job_events_after_s=0.0), max_backoff_s=0.05)
    yield runtime
    runtime.close()


def test_waiting_for_events_no_round_follows_a_running_job_until_its_event(on_events: Any) -> None:
    runtime = on_events
    run_id = execute(runtime, TENANT, "short_job").body["run_id"]
    assert runtime.wait_idle(30)  # round 0 ended with the job running and published no re-check: nothing polls it
    stage = _stage(runtime, run_id)
    assert (stage["status"], stage["poll_seq"], stage["round_ended"]) == ("RUNNING", 0, 0)
    job_id = stage_job_id(run_id, "q", 1)
    job = runtime.context.state.get(job_path(job_id))
    time.sleep(max(0.0, datetime.fromisoformat(job["submitted_at"]).timestamp() + JOB_S - utc_now().timestamp()))
    assert _stage(runtime, run_id)["poll_seq"] == 0  # done, and still no round: the event is what ends it
    _publish(runtime, _completion(runtime, run_id, job_id))
    wait_for(lambda: _stage(runtime, run_id)["status"] == "SUCCEEDED", timeout=10)
    assert runtime.wait_idle(30)
    stage = _stage(runtime, run_id)
    assert stage["poll_seq"] == 1 and [a["status"] for a in stage["attempts"]] == ["SUCCEEDED"]
    assert runtime.context.state.get(f"{job_path(job_id)}_submits")["calls"] == 1


def test_waiting_for_a_lost_event_the_watchdog_tick_re_checks_the_job(on_events: Any, ticking_clock: Any) -> None:
    from shared.runs.watchdog import watchdog

    runtime = on_events
    run_id = execute(runtime, TENANT, "short_job").body["run_id"]
    assert runtime.wait_idle(30)
    time.sleep(JOB_S + 0.3)  # the job ends; its event is lost
    ticking_clock.advance(timedelta(seconds=stage_jobs.STALE_AFTER_S + 1))  # up to the next tick: the chain is stale
    assert watchdog(runtime.context)["redispatched"] == 1  # the tick's round finds it done
    wait_for(lambda: _stage(runtime, run_id)["status"] == "SUCCEEDED", timeout=10)
    assert runtime.wait_idle(30)
    assert runtime.context.state.get(stage_path(run_id, "after"))["status"] == "SUCCEEDED"
