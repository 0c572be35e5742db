"""maintenance: the watchdog on Scheduler ticks, and the handler of every dead-lettered message."""

from typing import Any

import functions_framework

from shared.app.maintenance import handle_maintenance_event


@functions_framework.cloud_event
def maintenance(cloud_event: Any) -> None:
    handle_maintenance_event(cloud_event)
