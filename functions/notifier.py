"""notifier: run/stage status events -> Slack/email alerts per tenant (shared.notify); a channel to retry nacks."""

from typing import Any

import functions_framework

from shared.app.delivery import handle_event
from shared.contracts.messages import StatusEvent
from shared.notify import deliver_event


@functions_framework.cloud_event
def notifier(cloud_event: Any) -> None:
    handle_event(cloud_event, StatusEvent, deliver_event, "notifier")
