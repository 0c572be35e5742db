"""Job-completion log entries (shared/runs/job_events.py): what a real-shaped BigQuery audit entry says, which stage
attempt a job id belongs to, what does not fit, and when a stage's next poll round may start."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from shared.clock import iso, utc_now
from shared.contracts.messages import parse_message
from shared.errors import UndecodableMessage
from shared.ports.warehouse import StepJobs
from shared.processors.jobs import stage_job_id
from shared.runs.job_events import JobCompletion, JobLogEntry, StageJob, completion_of, stage_job_of
from shared.runs.stage_jobs import STALE_AFTER_S, idle_round
from tests.job_event_entries import completion_entry, golden, stage_job_labels

RUN = "run_0194a6b3c2d4e5f60718"


def _entry(raw: object) -> JobLogEntry:
    return parse_message(json.dumps(raw).encode(), JobLogEntry)


def test_a_done_entry_is_the_jobs_success_with_its_labels() -> None:
    done = completion_of(_entry(golden("done")))
    assert done is not None
    assert (done.project, done.job_id, done.error, done.failed) == (
        "demo-project",
        f"cdp_{RUN}_daily_totals_1",
        None,
        False,
    )
    assert done.labels["tenant"] == "acme" and done.labels["attempt"] == "1"


def test_a_done_entry_with_an_error_result_is_the_jobs_failure() -> None:
    done = completion_of(_entry(golden("failed")))
    assert done is not None and done.failed
    assert done.error == "Query error: Division by zero: 100 / 0 at [2:18]"


def test_entries_that_are_not_a_completion_are_none() -> None:
    running = golden("done")
    change = running["protoPayload"]["metadata"]["jobChange"]
    change["after"], change["job"]["jobStatus"] = "RUNNING", {"jobState": "RUNNING"}
    assert completion_of(_entry(running)) is None
    assert completion_of(_entry(golden("insertion"))) is None  # a jobInsertion: the job only started
    other_service = golden("done")
    other_service["protoPayload"]["serviceName"] = "storage.googleapis.com"
    assert completion_of(_entry(other_service)) is None
    bad_name = completion_entry("demo-project", "cdp_x_1")
    bad_name["protoPayload"]["metadata"]["jobChange"]["job"]["jobName"] = "jobs/cdp_x_1"
    assert completion_of(_entry(bad_name)) is None


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({"insertId": "x", "textPayload": "hello"}).encode(), "protoPayload"),
        (
            json.dumps({"protoPayload": {"metadata": {"jobChange": {"after": "DONE"}}}}).encode(),
            "protoPayload.metadata.jobChange.job",
        ),
        (
            json.dumps({"protoPayload": {"metadata": {"jobChange": {"job": {"jobStatus": {}}}}}}).encode(),
            "jobName",
        ),
    ],
)
def test_malformed_data_does_not_fit_and_names_what_is_wrong(raw: bytes, field: str) -> None:
    with pytest.raises(UndecodableMessage, match=field):
        parse_message(raw, JobLogEntry)


def test_the_labels_of_a_stage_job_name_its_attempt() -> None:
    job_id = stage_job_id("r-7", "load", 3)  # a run id not made by new_run_id: the labels carry it
    done = JobCompletion("p", job_id, stage_job_labels("acme", "daily", "r-7", "load", 3), None)
    assert stage_job_of(done) == StageJob("r-7", "load", 3)


def test_a_stage_job_without_labels_is_read_from_its_id() -> None:
    done = JobCompletion("p", stage_job_id(RUN, "daily_totals_v2", 12), {}, None)
    assert stage_job_of(done) == StageJob(RUN, "daily_totals_v2", 12)


def test_labels_that_do_not_make_the_job_id_are_not_trusted() -> None:
    job_id = stage_job_id(RUN, "daily_totals", 1)
    forged = stage_job_labels("acme", "daily", "run_00000000000000000000", "other", 1)
    assert stage_job_of(JobCompletion("p", job_id, forged, None)) == StageJob(RUN, "daily_totals", 1)


@pytest.mark.parametrize(
    "job_id",
    [
        StepJobs("acme", "daily", RUN, "daily_totals", 1).job_id(0, "SELECT 1"),  # a statement job of the step
        "bquxjob_5e1f2a3b_18c0d1e2f3a",  # the console's
        "scheduled_query_6581f0b2-0000-2a1b",  # a scheduled query's
        "cdp_notarun_q_1",
    ],
)
def test_jobs_that_are_not_a_stages_are_none(job_id: str) -> None:
    assert stage_job_of(JobCompletion("p", job_id, {"app": "cdp"}, None)) is None


def _stage(**fields: object) -> dict[str, object]:
    return {"status": "RUNNING", "job_id": "cdp_r_q_1", "poll_seq": 2, "polled_at": iso(utc_now()), **fields}


def test_the_next_round_starts_only_when_no_round_is_polling() -> None:
    now = utc_now()
    assert idle_round(_stage(round_ended=2), now) == 3  # round 2 ended with the job running: round 3 is next
    assert idle_round(_stage(round_ended=1), now) is None  # round 2 is polling now
    assert idle_round(_stage(), now) is None  # round 2 polling, no round ended yet (or an older deployment)
    stale = iso(now - timedelta(seconds=STALE_AFTER_S + 1))
    assert idle_round(_stage(round_ended=1, polled_at=stale), now) == 3  # round 2's worker died: taken over
    assert idle_round(_stage(status="SUCCEEDED", round_ended=2), now) is None
    assert idle_round(_stage(job_id=None, round_ended=2), now) is None
