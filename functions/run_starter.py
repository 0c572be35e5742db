"""run_starter: run.requested -> load + validate the pipeline, mark RUNNING, dispatch the ready stages."""

from typing import Any

import functions_framework

from shared.app.delivery import handle_event
from shared.contracts.messages import RunRequest
from shared.runs.run_start import start_run


@functions_framework.cloud_event
def run_starter(cloud_event: Any) -> None:
    handle_event(cloud_event, RunRequest, start_run, "run_starter")
