"""Google Cloud Pub/Sub publisher (also used against the Pub/Sub emulator via PUBSUB_EMULATOR_HOST).

Publishing is one synchronous Publish RPC per call (all of a call's messages in one request, chunked under the API's
limits): a function acks its input only after its outputs are accepted, so a crash can duplicate a message but never
lose one. The client library's batching publisher is not used: its batch thread and futures cost 5-8 ms per hop for
no gain here, where every call already knows its whole batch.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from shared.contracts.envelope import OutboundMessage
from shared.errors import TerminalError, TransientError


class PubSubBus:
    def __init__(self, project: str, publish_timeout_s: float = 30.0) -> None:
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
