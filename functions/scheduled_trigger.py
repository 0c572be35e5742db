"""scheduled_trigger: Cloud Scheduler tick -> the same admission as the API, deduplicated on the schedule time."""

from typing import Any

import functions_framework

from shared.app.delivery import handle_received_event
from shared.contracts.envelope import ReceivedMessage
from shared.contracts.messages import ScheduleTick
from shared.runtime.context import Context
from shared.scheduling import publish_time_of, trigger_scheduled_run


@functions_framework.cloud_event
def scheduled_trigger(cloud_event: Any) -> None:
    handle_received_event(cloud_event, ScheduleTick, _trigger, "scheduled_trigger")


def _trigger(ctx: Context, tick: ScheduleTick, received: ReceivedMessage) -> None:
    # the publish time dates a static Scheduler tick that carries no scheduled_for
    trigger_scheduled_run(ctx, tick, publish_time_of(received))
