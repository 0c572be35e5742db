"""A BigQuery job-completion log entry published to cdp-job-events on the Pub/Sub emulator, as the Cloud Logging sink
does on GCP (terraform/modules/platform/job_events.tf), ends a job stage whose re-check chain was lost: the push
subscription takes it to the stage_worker process, which publishes the stage's next round (shared/runs/job_events).

The chain is broken for real: the stage tasks' push subscription is deleted while the job's first round polls, so that
round's re-check is published to a topic nobody reads, then the subscription is re-created as the stack made it.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bench.local_stack import http_json, provision_pubsub
from shared.contracts import topics
from shared.contracts.state_paths import run_path, stage_path
from shared.processors.debug_job import job_path
from shared.processors.jobs import stage_job_id
from tests.conftest import wait_for
from tests.e2e.conftest import stack_context
from tests.job_event_entries import completion_entry, stage_job_labels

pytestmark = [pytest.mark.emulator, pytest.mark.timeout(180)]

TENANT = "testco"
PIPELINE = "job_event_e2e"
JOB_S = 8  # longer than the first round (5 s), so that round ends with the job running and sends a re-check


def STACK_EXTRA_ENV(root: Path) -> dict[str, str]:  # read by the emulator_stack fixture, before the stack starts
    (root / "tenant_configs" / TENANT / "pipelines" / f"{PIPELINE}.yaml").write_text(
        f"pipeline_id: {PIPELINE}\nsteps:\n"
        f"  - {{step_id: q, ps_type: debug.job, config: {{duration_s: {JOB_S}, rows: 3}}}}\n"
        "  - {step_id: after, ps_type: debug.noop, depends_on: [q]}\n"
    )
    return {}


def test_a_completion_event_on_pubsub_ends_a_job_stage_whose_chain_was_lost(emulator_stack: Any) -> None:
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    stack, project = emulator_stack, emulator_stack.project
    admin = {"X-Admin-Token": stack.env["CLOUDACT_ADMIN_TOKEN"], "X-User-ID": "e2e"}
    onboarding = json.dumps({"tenant_id": TENANT, "plan": "starter"}).encode()
    status, created = http_json("POST", f"{stack.api_url}/api/v1/admin/tenants", onboarding, admin)
    assert status in (200, 201), created
    key = {"X-API-Key": created["api_key"]["api_key"], "X-User-ID": "e2e"}
    status, body = http_json(
        "POST",
        f"{stack.api_url}/api/v1/tenants/{TENANT}/pipelines/execute",
        json.dumps({"pipeline_id": PIPELINE}).encode(),
        key,
    )
    assert status == 202, body
    run_id, job_id = body["run_id"], stage_job_id(body["run_id"], "q", 1)
    state = stack_context(stack).state

    def stage() -> dict[str, Any]:
        return dict(state.get(stage_path(run_id, "q")) or {})

    wait_for(lambda: stage().get("status") == "RUNNING", timeout=30, interval=0.05)
    subscriber = pubsub_v1.SubscriberClient()
    stage_tasks = subscriber.subscription_path(project, topics.subscription_name(topics.STAGE_TASKS))
    subscriber.delete_subscription(subscription=stage_tasks)  # round 0's re-check will reach nobody
    wait_for(lambda: stage().get("round_ended") == 0, timeout=30, interval=0.05)
    time.sleep(0.5)  # the re-check is published right after round_ended is written
    provision_pubsub(project, {name: server.url for name, server in stack.servers.items()})

    submitted = datetime.fromisoformat(state.get(job_path(job_id))["submitted_at"]).timestamp()
    time.sleep(max(0.0, submitted + JOB_S - time.time()) + 2.0)
    lost = stage()
    assert (lost["status"], lost["poll_seq"]) == ("RUNNING", 0), lost  # the job is done, and nobody polls it

    publisher = pubsub_v1.PublisherClient()
    entry = completion_entry(project, job_id, stage_job_labels(TENANT, PIPELINE, run_id, "q", 1))
    published = time.monotonic()
    publisher.publish(publisher.topic_path(project, topics.JOB_EVENTS), json.dumps(entry).encode()).result(10)
    wait_for(lambda: stage().get("status") == "SUCCEEDED", timeout=30, interval=0.05)
    ended_after = time.monotonic() - published
    done = stage()
    assert done["poll_seq"] == 1 and done["rows_out"] == 3, done  # one round, started by the event
    assert state.get(f"{job_path(job_id)}_submits")["calls"] == 1
    run = wait_for(lambda: (r := state.get(run_path(run_id))) and r.get("finalized") and r, timeout=60, interval=0.2)
    assert run["status"] == "SUCCEEDED", run
    print(f"job stage ended {ended_after:.2f} s after its completion event was published")
