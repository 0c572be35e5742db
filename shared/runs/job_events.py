"""BigQuery job-completion events: the audit log entry BigQuery writes when one of our stage jobs ends (a Cloud Logging
sink publishes it to `cdp-job-events`, terraform/modules/platform/job_events.tf) starts that stage's next poll round
now, instead of when the stage's re-check comes.

The event is a hint, never the outcome. It only publishes the stage's next re-check, the very message the poll chain
sends (shared/runs/stage_jobs.py), and that round asks the job service for the job's state; the entry's own
`jobStatus` is logged, never recorded. So an entry that is forged, duplicated, late, for an older attempt or for a job
that is not a stage's costs at most one poll, and usually nothing: it is checked against the stage document (our
project, the job id the stage recorded, the tenant's label, RUNNING, no round polling now), and the round is claimed by
compare-and-set on `poll_seq`, which a duplicate, or the chain's own re-check racing it, loses.
Where there is no audit log (the embedded runtime, the emulators) the re-check chain alone finishes jobs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from shared import logs
from shared.clock import utc_now
from shared.contracts.messages import Message
from shared.contracts.state_paths import run_path, stage_path
from shared.contracts.states import StageStatus, StatementState
from shared.ports.warehouse import label_value
from shared.processors.jobs import stage_job_id
from shared.runs.events import publish_stage_tasks
from shared.runs.stage_jobs import idle_round
from shared.runtime.context import Context

log = logs.get_logger(__name__)
_JOB_NAME = re.compile(r"^projects/([^/]+)/jobs/([A-Za-z0-9_-]{1,1024})$")
_NEW_RUN_JOB = re.compile(r"^cdp_(run_[0-9a-f]+)_([a-z][a-z0-9_]{0,62})_([0-9]{1,9})$")
"""A stage job of a run id made by shared/runs/store.py `new_run_id`, for entries that lost their labels."""


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ErrorStatus(_Part):
    code: int | None = None
    message: str | None = None


class JobStatus(_Part):
    job_state: str | None = Field(default=None, alias="jobState")
    error_result: ErrorStatus | None = Field(default=None, alias="errorResult")


class JobConfig(_Part):
    labels: dict[str, str] = Field(default_factory=dict)


class Job(_Part):
    job_name: str = Field(alias="jobName", description="projects/<project>/jobs/<job id>")
    job_config: JobConfig = Field(default_factory=JobConfig, alias="jobConfig")
    job_status: JobStatus = Field(default_factory=JobStatus, alias="jobStatus")


class JobChange(_Part):
    after: str | None = None
    job: Job


class AuditMetadata(_Part):
    job_change: JobChange | None = Field(default=None, alias="jobChange")


class AuditLog(_Part):
    service_name: str | None = Field(default=None, alias="serviceName")
    metadata: AuditMetadata | None = None


class JobLogEntry(Message):
    """What a job's completion needs of a Cloud Logging LogEntry (the Pub/Sub message's data) carrying
    BigQueryAuditMetadata. Anything else in the entry is ignored; an entry without `protoPayload`, or whose
    `jobChange` has no `job.jobName`, does not fit (dead-lettered with the field named, never retried)."""

    proto_payload: AuditLog = Field(alias="protoPayload")
    insert_id: str | None = Field(default=None, alias="insertId")


@dataclass(frozen=True)
class JobCompletion:
    """Job `job_id` of `project` finished: DONE, with BigQuery's error when it failed."""

    project: str
    job_id: str
    labels: dict[str, str]
    error: str | None

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass(frozen=True)
class StageJob:
    run_id: str
    stage_id: str
    attempt: int


def completion_of(entry: JobLogEntry) -> JobCompletion | None:
    """The job completion an entry reports; None for any other entry (a job that is not DONE, another event)."""
    payload = entry.proto_payload
    change = payload.metadata.job_change if payload.metadata else None
    if payload.service_name not in (None, "bigquery.googleapis.com") or change is None:
        return None
    job = change.job
    if change.after != StatementState.DONE and job.job_status.job_state != StatementState.DONE:
        return None
    name = _JOB_NAME.match(job.job_name)
    if name is None:
        return None
    failure = job.job_status.error_result
    error = (failure.message or f"code {failure.code}") if failure and (failure.message or failure.code) else None
    return JobCompletion(name.group(1), name.group(2), dict(job.job_config.labels), error)


def stage_job_of(done: JobCompletion) -> StageJob | None:
    """The attempt whose job this is, from the labels our jobs carry (checked against the id they make), else from
    the id of a run named by `new_run_id`. None: not a stage's job (a step's statement job, someone else's)."""
    run, stage, attempt = (done.labels.get(k, "") for k in ("run", "stage", "attempt"))
    if attempt.isdigit() and stage_job_id(run, stage, int(attempt)) == done.job_id:
        return StageJob(run, stage, int(attempt))
    parsed = _NEW_RUN_JOB.match(done.job_id)
    if parsed is None:
        return None
    return StageJob(parsed.group(1), parsed.group(2), int(parsed.group(3)))


def on_job_completion(ctx: Context, entry: JobLogEntry) -> None:
    """stage_worker's handler of `cdp-job-events`: publish the next poll round of the job's stage, or log why not.
    Returns normally (ack) whenever the entry was understood; a state read that fails raises (nack, redelivered)."""
    done = completion_of(entry)
    if done is None:
        log.info("log entry %s is not a BigQuery job completion: ignored", entry.insert_id)
        return
    target = stage_job_of(done) if done.project == ctx.settings.project else None
    if target is None:
        log.info("job %s of project %s is not a stage job of ours: ignored", done.job_id, done.project)
        return
    with logs.log_context(run_id=target.run_id, stage_id=target.stage_id):
        reason = _wake(ctx, done, target)
        outcome = "failed" if done.failed else "succeeded"
        log.info("job %s %s (event): %s", done.job_id, outcome, reason)


def _wake(ctx: Context, done: JobCompletion, target: StageJob) -> str:
    run = ctx.state.get(run_path(target.run_id))
    stage = ctx.state.get(stage_path(target.run_id, target.stage_id))
    if run is None or stage is None:
        return "no such stage: ignored"
    tenant = done.labels.get("tenant")
    if tenant is not None and tenant != label_value(str(run["tenant_id"])):
        log.warning("job %s is labelled tenant %r, its run belongs to another tenant: ignored", done.job_id, tenant)
        return "tenant label does not match the run: ignored"
    if stage.get("job_id") != done.job_id or stage.get("attempt") != target.attempt:
        return f"the stage's job is {stage.get('job_id')!r} (attempt {stage.get('attempt')}): ignored"
    if stage.get("status") != StageStatus.RUNNING:
        return f"stage already {stage.get('status')}: ignored"
    next_round = idle_round(stage, utc_now())
    if next_round is None:
        return f"round {stage.get('poll_seq')} is polling the job now and sees it end: nothing to do"
    publish_stage_tasks(ctx.bus, run, [target.stage_id], poll_seq=next_round)
    return f"re-check for round {next_round} published"
