"""The message bus port: publish to a topic. Delivery (push to a function) is the runtime's business."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from shared.contracts.envelope import OutboundMessage


class MessageBus(Protocol):
    def publish(self, topic: str, messages: Sequence[OutboundMessage]) -> list[str]:
        """Publish and return message ids only once every message is durably accepted.

        Callers ack their own input only after this returns, so a crash never loses a message.
        Raises TransientError when the bus is unavailable.
        """
        ...

    def close(self) -> None: ...
