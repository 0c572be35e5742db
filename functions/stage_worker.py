"""stage_worker: stage.task -> claim the attempt, run the processor, record it, dispatch what became ready."""

from typing import Any

import functions_framework

from shared.app.delivery import handle_event
from shared.contracts.messages import StageTask
from shared.runs.engine import execute_stage


@functions_framework.cloud_event
def stage_worker(cloud_event: Any) -> None:
    handle_event(cloud_event, StageTask, execute_stage, "stage_worker")
