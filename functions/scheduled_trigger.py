"""scheduled_trigger: Cloud Scheduler tick -> the same admission as the API, deduplicated on the schedule time."""

from typing import Any

import functions_framework

from shared.app.delivery import handle_event
from shared.contracts.messages import ScheduleTick
from shared.runtime.context import Context
from shared.scheduling import publish_time_of, trigger_scheduled_run


@functions_framework.cloud_event
def scheduled_trigger(cloud_event: Any) -> None:
    published_at = publish_time_of(cloud_event)  # dates a static Scheduler tick that carries no scheduled_for

    def trigger(ctx: Context, tick: ScheduleTick) -> None:
        trigger_scheduled_run(ctx, tick, published_at)

    handle_event(cloud_event, ScheduleTick, trigger, "scheduled_trigger")
