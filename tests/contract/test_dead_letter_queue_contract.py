"""One contract for the DeadLetterQueue port on both adapters: the in-process bus (its SQLite dead-letter file) and
Pub/Sub (the emulator's pull subscription on the dead-letter topic).

What the operator's commands rely on: a message nacked to death shows up in the queue with its bytes, attributes and
Pub/Sub's delivery count; looking consumes nothing (twice the same, ids stable); acking removes exactly the named
ones and says which were there.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.dead_letter_file import DeadLetterFile
from shared.adapters.inprocess_bus import InProcessBus
from shared.contracts.envelope import OutboundMessage, ReceivedMessage
from shared.ports.bus import DeadLetterQueue, MessageBus
from tests.servers import PUBSUB_MISSING, server_missing

TOPIC, DLQ_TOPIC, DLQ_PULL = "dlq-contract", "dlq-contract-dead", "dlq-contract-dead--inspect"


@dataclass
class QueueHarness:
    bus: MessageBus
    queue: DeadLetterQueue
    subscribe_failing: Callable[[int], None]
    """Subscribe to TOPIC a handler that always nacks, dead-lettering to DLQ_TOPIC after n deliveries."""
    close: Callable[[], None]


def _inprocess(tmp_path: Path) -> QueueHarness:
    bus = InProcessBus(workers=2, min_backoff_s=0.001, max_backoff_s=0.01)
    bus.retain(DLQ_TOPIC, DeadLetterFile(tmp_path / "dead_letters.sqlite3"))

    def always_fail(message: ReceivedMessage) -> None:
        raise RuntimeError("poison")

    def subscribe_failing(attempts: int) -> None:
        bus.subscribe(TOPIC, always_fail, f"{TOPIC}--worker", DLQ_TOPIC, attempts)

    return QueueHarness(bus, bus, subscribe_failing, bus.close)


def _pubsub() -> QueueHarness:
    if not os.environ.get("PUBSUB_EMULATOR_HOST"):
        server_missing(PUBSUB_MISSING)
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    from shared.adapters.pubsub_bus import PubSubBus

    project = f"dlq-{uuid.uuid4().hex[:8]}"
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    for topic in (TOPIC, DLQ_TOPIC):
        publisher.create_topic(name=publisher.topic_path(project, topic))
    subscriber.create_subscription(
        name=subscriber.subscription_path(project, DLQ_PULL), topic=publisher.topic_path(project, DLQ_TOPIC)
    )
    futures: list[Any] = []

    def subscribe_failing(attempts: int) -> None:
        name = subscriber.subscription_path(project, f"{TOPIC}--worker")
        subscriber.create_subscription(
            request={
                "name": name,
                "topic": publisher.topic_path(project, TOPIC),
                "ack_deadline_seconds": 10,
                "dead_letter_policy": {
                    "dead_letter_topic": publisher.topic_path(project, DLQ_TOPIC),
                    "max_delivery_attempts": attempts,
                },
            }
        )
        futures.append(subscriber.subscribe(name, lambda message: message.nack()))

    bus = PubSubBus(project, dead_letter_subscription=DLQ_PULL)

    def close() -> None:
        for future in futures:
            future.cancel()
        bus.close()

    return QueueHarness(bus, bus, subscribe_failing, close)


@pytest.fixture(params=["inprocess", pytest.param("pubsub", marks=pytest.mark.emulator)])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[QueueHarness]:
    h = _inprocess(tmp_path) if request.param == "inprocess" else _pubsub()
    yield h
    h.close()


def _eventually(timeout: float, probe: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_a_message_nacked_to_death_is_in_the_queue_with_its_delivery_count(harness: QueueHarness) -> None:
    harness.subscribe_failing(5)
    harness.bus.publish(TOPIC, [OutboundMessage(b'{"kind": "stage.task"}', {"run_id": "r1"})])
    letters = _eventually(90, lambda: harness.queue.peek_dead_letters(10))
    assert len(letters) == 1
    letter = letters[0]
    assert letter.data == b'{"kind": "stage.task"}' and letter.attributes["run_id"] == "r1"
    assert letter.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert letter.attributes["CloudPubSubDeadLetterSourceSubscription"].endswith(f"{TOPIC}--worker")
    assert letter.publish_time


def test_peeking_consumes_nothing_and_ack_removes_exactly_the_named(harness: QueueHarness) -> None:
    harness.bus.publish(DLQ_TOPIC, [OutboundMessage(f"m{i}".encode(), {"n": str(i)}) for i in range(5)])
    first = _eventually(30, lambda: (found := harness.queue.peek_dead_letters(100)) and len(found) == 5 and found)
    again = harness.queue.peek_dead_letters(100)
    assert sorted(x.dead_letter_id for x in again) == sorted(x.dead_letter_id for x in first)
    by_n = {x.attributes["n"]: x for x in first}
    assert {n: x.data for n, x in by_n.items()} == {str(i): f"m{i}".encode() for i in range(5)}
    assert len(harness.queue.peek_dead_letters(2)) == 2  # the limit is honoured

    doomed = [by_n["1"].dead_letter_id, by_n["3"].dead_letter_id]
    acked = harness.queue.ack_dead_letters([*doomed, "no-such-id"])
    assert sorted(acked) == sorted(doomed)
    left = harness.queue.peek_dead_letters(100)
    assert sorted(x.attributes["n"] for x in left) == ["0", "2", "4"]
    assert harness.queue.ack_dead_letters(doomed) == []  # acking again finds nothing
