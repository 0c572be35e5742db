"""scheduled_trigger: Cloud Scheduler tick -> the same admission as the API, deduplicated on the schedule time."""

from typing import Any

import functions_framework

from shared.contracts.messages import ScheduleTick
from shared.runtime.delivery import handle_event
from shared.scheduling import trigger_scheduled_run


@functions_framework.cloud_event
def scheduled_trigger(cloud_event: Any) -> None:
    handle_event(cloud_event, ScheduleTick, trigger_scheduled_run, "scheduled_trigger")
