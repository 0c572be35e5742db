"""Google Cloud Pub/Sub publisher (also used against the Pub/Sub emulator via PUBSUB_EMULATOR_HOST).

Publishing waits for every future: a function acks its input only after its outputs are accepted, so a crash can
duplicate a message but never lose one. Batching latency is 1 ms (the default 10 ms costs ~15 ms per hop).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.contracts.envelope import OutboundMessage
from shared.errors import TerminalError, TransientError


class PubSubBus:
    def __init__(self, project: str, publish_timeout_s: float = 30.0) -> None:
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]

        self._project = project
        self._timeout = publish_timeout_s
        self._publisher: Any = pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(max_messages=500, max_latency=0.001)
        )
        self._paths: dict[str, str] = {}

    def _topic_path(self, topic: str) -> str:
        path = self._paths.get(topic)
        if path is None:
            path = self._paths[topic] = self._publisher.topic_path(self._project, topic)
        return path

    def publish(self, topic: str, messages: Sequence[OutboundMessage]) -> list[str]:
        from google.api_core import exceptions as gexc

        path = self._topic_path(topic)
        try:
            futures = [self._publisher.publish(path, m.data, **m.attributes) for m in messages]
            return [str(f.result(timeout=self._timeout)) for f in futures]
        except (gexc.NotFound, gexc.PermissionDenied, gexc.InvalidArgument) as exc:
            raise TerminalError(f"publish to {topic} refused: {exc}") from exc
        except Exception as exc:  # timeouts, unavailability, transport errors: the caller nacks and is redelivered
            raise TransientError(f"publish to {topic} failed: {exc}") from exc

    def close(self) -> None:
        self._publisher.transport.close() if hasattr(self._publisher, "transport") else None
