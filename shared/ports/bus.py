"""The message bus port: publish to a topic; and the dead-letter queue an operator inspects, replays and purges.

Delivery (push to a function) is the runtime's business. Every push subscription dead-letters to one topic, which has
a retained pull subscription nobody consumes automatically (the maintenance function reads its own push copy): that
subscription is the dead-letter queue below.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from shared.contracts.envelope import OutboundMessage


class MessageBus(Protocol):
    def publish(self, topic: str, messages: Sequence[OutboundMessage]) -> list[str]:
        """Publish and return message ids only once every message is durably accepted.

        Callers ack their own input only after this returns, so a crash never loses a message.
        Raises TransientError when the bus is unavailable.
        """
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class DeadLetter:
    dead_letter_id: str
    """Stable while the message sits in the queue (Pub/Sub: its message id on the dead-letter topic)."""
    data: bytes
    attributes: dict[str, str] = field(default_factory=dict)
    publish_time: str = ""
    """When it was dead-lettered (published to the dead-letter topic), RFC 3339."""


@runtime_checkable
class DeadLetterQueue(Protocol):
    def peek_dead_letters(self, limit: int) -> list[DeadLetter]:
        """Up to `limit` dead letters, oldest first where the backend knows the order. Consumes nothing."""
        ...

    def ack_dead_letters(self, dead_letter_ids: Collection[str]) -> list[str]:
        """Remove these dead letters from the queue; returns the ids that were there (the rest are ignored)."""
        ...
