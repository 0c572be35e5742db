"""Google Cloud Pub/Sub publisher (also used against the Pub/Sub emulator via PUBSUB_EMULATOR_HOST).

Publishing is one synchronous Publish RPC per call (all of a call's messages in one request, chunked under the API's
limits): a function acks its input only after its outputs are accepted, so a crash can duplicate a message but never
lose one. The client library's batching publisher is not used: its batch thread and futures cost 5-8 ms per hop for
no gain here, where every call already knows its whole batch.

The dead-letter queue is the dead-letter topic's retained pull subscription. Listing pulls without acking and hands
every lease straight back (ack deadline 0), so looking never consumes; acking by id pulls until the ids are found.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from typing import Any

from shared.contracts import topics
from shared.contracts.envelope import OutboundMessage
from shared.errors import TerminalError, TransientError
from shared.ports.bus import DeadLetter

_PULL_WAIT_S = 3.0
"""How long one pull may wait for messages: an empty subscription answers with nothing (or a deadline) after it."""
MAX_DEAD_LETTER_SCAN = 10_000
"""Acking by id pulls at most this many dead letters looking for them (the rest stay for another call)."""


class PubSubBus:
    def __init__(
        self,
        project: str,
        publish_timeout_s: float = 30.0,
        dead_letter_subscription: str = topics.DEAD_LETTER_PULL_SUBSCRIPTION,
    ) -> None:
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]

        self._project = project
        self._timeout = publish_timeout_s
        from google.api_core import retry as retries
        from google.pubsub_v1.services.publisher import client as gapic

        self._publisher: Any = pubsub_v1.PublisherClient()  # configures the emulator channel and credentials
        # The wrapper subclasses the generated client and overrides publish() with its batching version; call the
        # generated (unbatched) publish on it directly.
        self._gapic_publish: Any = functools.partial(gapic.PublisherClient.publish, self._publisher)
        self._message_type: Any = pubsub_v1.types.PubsubMessage
        self._retry = retries.Retry(deadline=publish_timeout_s)  # default predicate: transient gRPC codes
        self._paths: dict[str, str] = {}
        self._dead_letter_subscription = dead_letter_subscription
        self._subscriber: Any = None

    def _topic_path(self, topic: str) -> str:
        path = self._paths.get(topic)
        if path is None:
            path = self._paths[topic] = self._publisher.topic_path(self._project, topic)
        return path

    def publish(self, topic: str, messages: Sequence[OutboundMessage]) -> list[str]:
        from google.api_core import exceptions as gexc

        path = self._topic_path(topic)
        ids: list[str] = []
        try:
            for chunk in _chunks(messages):
                response = self._gapic_publish(
                    topic=path,
                    messages=[self._message_type(data=m.data, attributes=m.attributes) for m in chunk],
                    retry=self._retry,
                    timeout=self._timeout,
                )
                ids.extend(str(i) for i in response.message_ids)
            return ids
        except (gexc.NotFound, gexc.PermissionDenied, gexc.InvalidArgument) as exc:
            raise TerminalError(f"publish to {topic} refused: {exc}") from exc
        except Exception as exc:  # timeouts, unavailability, transport errors: the caller nacks and is redelivered
            raise TransientError(f"publish to {topic} failed: {exc}") from exc

    def close(self) -> None:
        self._publisher.transport.close() if hasattr(self._publisher, "transport") else None
        if self._subscriber is not None:
            self._subscriber.close()

    # -- DeadLetterQueue ------------------------------------------------------------------------------------------
    def peek_dead_letters(self, limit: int) -> list[DeadLetter]:
        leased = self._pull(limit)
        self._release([ack_id for ack_id, _ in leased])
        return [letter for _, letter in leased]

    def ack_dead_letters(self, dead_letter_ids: Collection[str]) -> list[str]:
        wanted = set(dead_letter_ids)
        leased = self._pull(MAX_DEAD_LETTER_SCAN, stop_when_found=wanted)
        found = [(ack_id, letter) for ack_id, letter in leased if letter.dead_letter_id in wanted]
        try:
            if found:
                self._call("acknowledge", ack_ids=[ack_id for ack_id, _ in found])
        finally:
            self._release([ack_id for ack_id, letter in leased if letter.dead_letter_id not in wanted])
        return sorted({letter.dead_letter_id for _, letter in found})

    def _pull(self, limit: int, stop_when_found: set[str] | None = None) -> list[tuple[str, DeadLetter]]:
        """Lease up to `limit` distinct dead letters (the caller acks or releases every lease it gets)."""
        leased: dict[str, tuple[str, DeadLetter]] = {}
        duplicates: list[str] = []
        try:
            while len(leased) < limit:
                response = self._call("pull", max_messages=min(1000, limit - len(leased)), timeout=_PULL_WAIT_S)
                if response is None or not response.received_messages:
                    break
                for item in response.received_messages:
                    message = item.message
                    if message.message_id in leased:  # redelivered while we held it: one lease is enough
                        duplicates.append(item.ack_id)
                        continue
                    letter = DeadLetter(
                        str(message.message_id),
                        bytes(message.data),
                        dict(message.attributes),
                        message.publish_time.isoformat() if message.publish_time else "",
                    )
                    leased[letter.dead_letter_id] = (item.ack_id, letter)
                if stop_when_found is not None and stop_when_found <= leased.keys():
                    break
        except BaseException:
            self._release([ack_id for ack_id, _ in leased.values()] + duplicates)
            raise
        self._release(duplicates)
        return sorted(leased.values(), key=lambda pair: pair[1].publish_time)

    def _release(self, ack_ids: list[str]) -> None:
        """Hand leases back at once (ack deadline 0): looking at a dead letter leaves it where it was."""
        for start in range(0, len(ack_ids), 1000):
            self._call("modify_ack_deadline", ack_ids=ack_ids[start : start + 1000], ack_deadline_seconds=0)

    def _call(self, method: str, timeout: float | None = None, **request: Any) -> Any:
        from google.api_core import exceptions as gexc

        if self._subscriber is None:
            from google.cloud import pubsub_v1  # type: ignore[attr-defined]

            self._subscriber = pubsub_v1.SubscriberClient()
        subscription = self._subscriber.subscription_path(self._project, self._dead_letter_subscription)
        try:
            return getattr(self._subscriber, method)(
                request={"subscription": subscription, **request}, timeout=timeout or self._timeout
            )
        except gexc.DeadlineExceeded:
            if method == "pull":  # nothing arrived within the wait: the subscription is empty
                return None
            raise TransientError(f"dead-letter {method} timed out") from None
        except (gexc.NotFound, gexc.PermissionDenied, gexc.InvalidArgument) as exc:
            raise TerminalError(f"dead-letter subscription {self._dead_letter_subscription}: {exc}") from exc
        except gexc.GoogleAPICallError as exc:
            raise TransientError(f"dead-letter {method} failed: {exc}") from exc


_MAX_MESSAGES = 1000
_MAX_BYTES = 9 * 1024 * 1024  # the API's request limit is 10 MB


def _chunks(messages: Sequence[OutboundMessage]) -> list[Sequence[OutboundMessage]]:
    out: list[Sequence[OutboundMessage]] = []
    start, size = 0, 0
    for i, m in enumerate(messages):
        weight = len(m.data) + sum(len(k) + len(v) for k, v in m.attributes.items()) + 64
        if i > start and (i - start >= _MAX_MESSAGES or size + weight > _MAX_BYTES):
            out.append(messages[start:i])
            start, size = i, 0
        size += weight
    if start < len(messages):
        out.append(messages[start:])
    return out
