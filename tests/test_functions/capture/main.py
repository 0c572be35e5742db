"""A deployable scenario function that records the CloudEvent functions-framework hands it."""

from typing import Any

import functions_framework

RECEIVED: list[Any] = []


@functions_framework.cloud_event
def capture(cloud_event: Any) -> None:
    RECEIVED.append(cloud_event)
