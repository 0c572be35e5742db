"""stage_worker, driven by functions-framework with the golden push body the Cloud Logging sink's subscription sends
(tests/data/golden/job_event.push.json): a push to the cdp-job-events URL is a job-completion entry, to the
cdp-stage-tasks URL a stage task, whatever the body says."""

from __future__ import annotations

import base64
import copy
import json
import threading
from typing import Any

from shared.clock import iso, utc_now
from shared.contracts import topics
from shared.contracts.envelope import ReceivedMessage
from shared.contracts.state_paths import run_path, stage_path
from shared.runtime.context import Context
from tests.unit.test_function_entry_points import client, ctx, push  # noqa: F401 (ctx is a fixture)

RUN, JOB = "run_0194a6b3c2d4e5f60718", "cdp_run_0194a6b3c2d4e5f60718_daily_totals_1"


def _collect(context: Context, topic: str) -> list[ReceivedMessage]:
    got: list[ReceivedMessage] = []
    lock = threading.Lock()

    def keep(message: ReceivedMessage) -> None:
        with lock:
            got.append(message)

    context.bus.subscribe(topic, keep)  # type: ignore[attr-defined]
    return got


def _running_job_stage(context: Context) -> None:
    """A job stage at round 3, which ended with the job running: the event's re-check is for round 4."""
    run = {"run_id": RUN, "tenant_id": "acme", "pipeline_id": "daily_sales", "status": "RUNNING"}
    context.state.create(run_path(RUN), run)
    stage = {"run_id": RUN, "stage_id": "daily_totals", "status": "RUNNING", "attempt": 1, "job_id": JOB}
    rounds = {"poll_seq": 3, "round_ended": 3, "polled_at": iso(utc_now())}
    context.state.create(stage_path(RUN, "daily_totals"), {**stage, **rounds})


def _in_project(body: dict[str, Any], project: str) -> dict[str, Any]:
    """The golden body's entry as BigQuery in `project` would write it."""
    entry = (
        base64.b64decode(body["message"]["data"]).decode().replace("projects/cloudact-test/", f"projects/{project}/")
    )
    return {**body, "message": {**body["message"], "data": base64.b64encode(entry.encode()).decode()}}


def test_a_completion_entry_pushed_to_stage_worker_publishes_the_stages_next_round(ctx: Context) -> None:  # noqa: F811
    _running_job_stage(ctx)
    tasks, letters = _collect(ctx, topics.STAGE_TASKS), _collect(ctx, topics.DEAD_LETTERS)
    url = f"/projects/cloudact-test/topics/{topics.JOB_EVENTS}"
    body = _in_project(push("job_event.push.json"), ctx.settings.project)
    assert client("stage_worker").post(url, json=body).status_code == 200
    assert ctx.bus.wait_idle(10)  # type: ignore[attr-defined]
    sent = [json.loads(m.data) for m in tasks]
    assert [(t["kind"], t["run_id"], t["stage_id"], t["poll_seq"]) for t in sent] == [
        ("stage.task", RUN, "daily_totals", 4)
    ]
    assert letters == []


def test_a_body_that_does_not_fit_its_topic_is_dead_lettered_and_acked(ctx: Context) -> None:  # noqa: F811
    letters = _collect(ctx, topics.DEAD_LETTERS)
    job_event = push("job_event.push.json")
    stage_task = copy.deepcopy(push("stage_task.push.json"))
    worker = client("stage_worker")
    # A log entry pushed as a stage task, and a stage task pushed as a log entry: each read as its URL's topic says.
    assert worker.post(f"/projects/cloudact-test/topics/{topics.STAGE_TASKS}", json=job_event).status_code == 200
    assert worker.post(f"/projects/cloudact-test/topics/{topics.JOB_EVENTS}", json=stage_task).status_code == 200
    broken: Any = copy.deepcopy(job_event)
    broken["message"]["data"] = base64.b64encode(b'{"protoPayload": "not an object"}').decode()
    assert worker.post(f"/projects/cloudact-test/topics/{topics.JOB_EVENTS}", json=broken).status_code == 200
    assert ctx.bus.wait_idle(10)  # type: ignore[attr-defined]
    reasons = sorted((m.attributes["cdp_source_topic"], m.attributes["cdp_dead_letter_reason"]) for m in letters)
    assert [topic for topic, _ in reasons] == [topics.JOB_EVENTS, topics.JOB_EVENTS, topics.STAGE_TASKS]
    assert all("JobLogEntry" in r for t, r in reasons if t == topics.JOB_EVENTS)
    assert "StageTask" in reasons[-1][1]
