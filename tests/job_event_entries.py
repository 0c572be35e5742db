"""BigQuery job-completion log entries for tests, made from the golden entries in tests/data/job_events/ (the
documented LogEntry + BigQueryAuditMetadata `jobChange` shape): what the Cloud Logging sink publishes to
cdp-job-events (terraform/modules/platform/job_events.tf)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from shared.ports.warehouse import StepJobs

GOLDEN = Path(__file__).resolve().parent / "data" / "job_events"


def golden(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((GOLDEN / f"{name}.logentry.json").read_text())
    return loaded


def completion_entry(
    project: str,
    job_id: str,
    labels: dict[str, str] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """The golden DONE entry for job `job_id` of `project`, with these labels, failed with `error` when given."""
    entry = copy.deepcopy(golden("failed" if error else "done"))
    job = entry["protoPayload"]["metadata"]["jobChange"]["job"]
    job["jobName"] = f"projects/{project}/jobs/{job_id}"
    entry["protoPayload"]["resourceName"] = job["jobName"]
    entry["resource"]["labels"]["project_id"] = project
    entry["logName"] = f"projects/{project}/logs/cloudaudit.googleapis.com%2Fdata_access"
    job["jobConfig"]["labels"] = dict(labels or {})
    if error:
        job["jobStatus"]["errorResult"]["message"] = error
    return entry


def stage_job_labels(tenant: str, pipeline: str, run_id: str, stage_id: str, attempt: int) -> dict[str, str]:
    """The labels BigQuery would show on a stage's job (shared/adapters/bigquery_warehouse.py + StepJobs)."""
    step = StepJobs(tenant, pipeline, run_id, stage_id, attempt).labels()
    return {"app": "cdp", "identity": f"cdp-t-{tenant}", **step}
