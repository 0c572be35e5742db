"""stage_worker: stage.task -> claim the attempt, run the processor, record it, dispatch what became ready.
A BigQuery job-completion log entry (cdp-job-events) -> that stage's next poll round, now (shared/runs/job_events)."""

from typing import Any

import functions_framework

from shared.app.delivery import handle_event
from shared.contracts import topics
from shared.contracts.envelope import source_topic
from shared.contracts.messages import StageTask
from shared.runs.engine import execute_stage
from shared.runs.job_events import JobLogEntry, on_job_completion


@functions_framework.cloud_event
def stage_worker(cloud_event: Any) -> None:
    if source_topic(cloud_event) == topics.JOB_EVENTS:
        handle_event(cloud_event, JobLogEntry, on_job_completion, "stage_worker")
        return
    handle_event(cloud_event, StageTask, execute_stage, "stage_worker")
