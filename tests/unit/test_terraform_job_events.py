"""BigQuery job-completion events on GCP (terraform/modules/platform/job_events.tf), evaluated with the parity
audit's Terraform reader (reliability/parity/terraform.py): the sink selects the completions of our stage jobs and
nothing else, writes as its own identity with publisher on that one topic, and a push subscription like every other
takes the entries to stage_worker."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from reliability.parity import terraform as tf
from shared.contracts import topics
from shared.ports.warehouse import StepJobs
from shared.processors.jobs import stage_job_id

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def root() -> tf.Module:
    return tf.load(REPO / "terraform", {"tenant_configs_dir": str(REPO / "tenant_configs")})


def _one(root: tf.Module, rtype: str, name: str) -> Any:
    found = [i for i in tf.every_instance(root, rtype) if i.name == name]
    assert len(found) == 1, f"{rtype}.{name}: {len(found)} instances"
    return found[0].attrs


def _clauses(text: str) -> dict[str, str]:
    """`field=value` / `field=~regex` clauses of an AND-only filter, by field."""
    out = {}
    for clause in text.split(" AND "):
        field, op, value = re.match(r'^(.+?)(=~|=)"(.*)"$', clause).groups()  # type: ignore[union-attr]
        out[field + (" =~" if op == "=~" else "")] = value.replace('\\"', '"')
    return out


def test_the_sink_selects_the_completion_entries_of_our_stage_jobs_only(root: tf.Module) -> None:
    sink = _one(root, "google_logging_project_sink", "job_events")
    assert sink["destination"] == f"pubsub.googleapis.com/projects/{tf.PROJECT}/topics/{topics.JOB_EVENTS}"
    assert sink["unique_writer_identity"] is True
    clauses = _clauses(sink["filter"])
    assert clauses["resource.type"] == "bigquery_project"
    assert clauses['protoPayload.metadata."@type"'] == "type.googleapis.com/google.cloud.audit.BigQueryAuditMetadata"
    assert clauses["protoPayload.metadata.jobChange.after"] == "DONE"
    # Every job the code starts carries app=cdp (shared/adapters/bigquery_warehouse.py); the sink keeps only those.
    assert clauses["protoPayload.metadata.jobChange.job.jobConfig.labels.app"] == "cdp"
    name = re.compile(clauses["protoPayload.metadata.jobChange.job.jobName =~"])  # RE2 here is a subset of re
    project_jobs = f"projects/{tf.PROJECT}/jobs/"
    assert name.match(project_jobs + stage_job_id("run_0194a6b3c2d4e5f60718", "daily_totals", 1))
    assert name.match(project_jobs + stage_job_id("run_0194a6b3c2d4e5f60718", "q", 12))
    statement = StepJobs("acme", "daily", "run_0194a6b3c2d4e5f60718", "daily_totals", 1).job_id(2, "DROP TABLE x")
    assert statement.endswith(statement[-16:]) and not statement[-16:].isdigit()
    assert not name.match(project_jobs + statement)  # a step's statement jobs end in a hash: no event for those
    assert not name.match(project_jobs + "bquxjob_5e1f2a3b_18c0d1e2f3a")
    assert not name.match(f"projects/other-project/jobs/{stage_job_id('run_01', 'q', 1)}")


def test_the_sinks_identity_may_publish_to_that_topic_and_nowhere_else(root: tf.Module) -> None:
    grant = _one(root, "google_pubsub_topic_iam_member", "job_events_writer")
    writer = _one(root, "google_logging_project_sink", "job_events")["writer_identity"]
    assert (grant["topic"], grant["role"], grant["member"]) == (topics.JOB_EVENTS, "roles/pubsub.publisher", writer)
    elsewhere = [
        i.address
        for rtype in ("google_project_iam_member", "google_pubsub_topic_iam_member")
        for i in tf.every_instance(root, rtype)
        if i.attrs["member"] == writer and i.name != "job_events_writer"
    ]
    assert elsewhere == []


def test_the_entries_reach_stage_worker_by_a_push_subscription_like_every_other(root: tf.Module) -> None:
    # One resource block makes every push subscription: the same OIDC push identity, endpoint pattern (the topic in
    # the URL, which stage_worker routes on), retry policy and dead-letter policy.
    subs = {i.key: i.attrs for i in tf.every_instance(root, "google_pubsub_subscription") if i.name == "push"}
    mine, theirs = subs[topics.subscription_name(topics.JOB_EVENTS)], subs[topics.subscription_name(topics.STAGE_TASKS)]
    assert mine["topic"] == f"projects/{tf.PROJECT}/topics/{topics.JOB_EVENTS}"
    assert "push_config" in mine
    for same in ("retry_policy", "ack_deadline_seconds"):
        assert mine[same] == theirs[same], same
    assert mine["dead_letter_policy"] == theirs["dead_letter_policy"] != []
