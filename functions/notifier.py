"""notifier: run/stage status events -> Slack/email alerts per tenant (shared.notify); a channel to retry nacks."""

from typing import Any

import functions_framework

from shared.contracts.messages import StatusEvent
from shared.notify import deliver_event
from shared.runtime.delivery import handle_event


@functions_framework.cloud_event
def notifier(cloud_event: Any) -> None:
    handle_event(cloud_event, StatusEvent, deliver_event, "notifier")
