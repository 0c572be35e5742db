"""One contract for the MessageBus port, run on both adapters: the in-process bus and Pub/Sub (emulator).

What every consumer relies on: a published message arrives with its bytes and attributes intact, a nack brings it
back, and a message nacked max_delivery_attempts times lands on the dead-letter topic with the source's delivery count.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from shared.adapters.inprocess_bus import InProcessBus
from shared.contracts.envelope import OutboundMessage, ReceivedMessage
from shared.ports.bus import MessageBus
from tests.servers import PUBSUB_MISSING, server_missing


@dataclass
class BusHarness:
    bus: MessageBus
    subscribe: Callable[[str, Callable[[ReceivedMessage], None], str | None, int], None]
    """(topic, handler, dead_letter_topic, max_delivery_attempts): handler raising = nack."""
    close: Callable[[], None]


def _inprocess() -> BusHarness:
    bus = InProcessBus(workers=4, min_backoff_s=0.001, max_backoff_s=0.01)

    def subscribe(topic: str, handler: Callable[[ReceivedMessage], None], dlq: str | None, attempts: int) -> None:
        bus.subscribe(topic, handler, f"{topic}-sub", dlq, attempts)

    return BusHarness(bus, subscribe, bus.close)


def _pubsub() -> BusHarness:
    if not os.environ.get("PUBSUB_EMULATOR_HOST"):
        server_missing(PUBSUB_MISSING)
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    from shared.adapters.pubsub_bus import PubSubBus

    project = f"bus-{uuid.uuid4().hex[:8]}"
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    futures: list[Any] = []
    created: set[str] = set()

    def ensure_topic(topic: str) -> str:
        path = publisher.topic_path(project, topic)
        if topic not in created:
            publisher.create_topic(name=path)
            created.add(topic)
        return path

    def subscribe(topic: str, handler: Callable[[ReceivedMessage], None], dlq: str | None, attempts: int) -> None:
        request: dict[str, Any] = {
            "name": subscriber.subscription_path(project, f"{topic}-sub"),
            "topic": ensure_topic(topic),
            "ack_deadline_seconds": 10,
        }
        if dlq:
            request["dead_letter_policy"] = {"dead_letter_topic": ensure_topic(dlq), "max_delivery_attempts": attempts}
        subscriber.create_subscription(request=request)

        def callback(message: Any) -> None:
            received = ReceivedMessage(
                message.data, dict(message.attributes), message.message_id, "", topic, message.delivery_attempt
            )
            try:
                handler(received)
            except Exception:
                message.nack()
            else:
                message.ack()

        futures.append(subscriber.subscribe(request["name"], callback))

    bus = PubSubBus(project)
    original_publish = bus.publish

    def publish(topic: str, messages: Any) -> list[str]:
        ensure_topic(topic)
        return original_publish(topic, messages)

    bus.publish = publish  # type: ignore[method-assign]

    def close() -> None:
        for future in futures:
            future.cancel()
        bus.close()

    return BusHarness(bus, subscribe, close)


@pytest.fixture(params=["inprocess", pytest.param("pubsub", marks=pytest.mark.emulator)])
def harness(request: pytest.FixtureRequest) -> Iterator[BusHarness]:
    h = _inprocess() if request.param == "inprocess" else _pubsub()
    yield h
    h.close()


def _collect(timeout: float, predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_published_messages_arrive_intact(harness: BusHarness) -> None:
    got: list[ReceivedMessage] = []
    lock = threading.Lock()

    def handler(m: ReceivedMessage) -> None:
        with lock:
            got.append(m)

    harness.subscribe("contract-topic", handler, None, 5)
    payloads = [OutboundMessage(f'{{"n": {i}}}'.encode(), {"tenant_id": "acme", "n": str(i)}) for i in range(25)]
    ids = harness.bus.publish("contract-topic", payloads)
    assert len(ids) == 25 and len(set(ids)) == 25
    _collect(30, lambda: len({m.message_id for m in got}) >= 25)
    by_n = {m.attributes["n"]: m for m in got}
    assert sorted(by_n, key=int) == [str(i) for i in range(25)]
    assert all(m.data == f'{{"n": {m.attributes["n"]}}}'.encode() for m in got)
    assert {m.attributes["tenant_id"] for m in got} == {"acme"}


def test_nack_redelivers(harness: BusHarness) -> None:
    attempts: list[int] = []

    def flaky(m: ReceivedMessage) -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("nack")

    harness.subscribe("contract-retry", flaky, "contract-retry-dlq", 10)
    harness.bus.publish("contract-retry", [OutboundMessage(b"{}", {})])
    _collect(60, lambda: len(attempts) >= 3)


def test_message_nacked_max_times_is_dead_lettered(harness: BusHarness) -> None:
    dead: list[ReceivedMessage] = []

    def always_fail(m: ReceivedMessage) -> None:
        raise RuntimeError("poison")

    harness.subscribe("contract-poison", always_fail, "contract-poison-dlq", 5)
    harness.subscribe("contract-poison-dlq", dead.append, None, 5)
    harness.bus.publish("contract-poison", [OutboundMessage(b"poison", {"k": "v"})])
    _collect(90, lambda: bool(dead))
    assert dead[0].data == b"poison" and dead[0].attributes["k"] == "v"
    assert dead[0].attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
