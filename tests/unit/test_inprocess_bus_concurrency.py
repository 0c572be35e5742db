"""The in-process bus's per-subscription max_concurrency: never more deliveries at once than the cap, the rest wait in
order and still count in flight (wait_idle), a nack under the cap is redelivered, and close() says what it drops."""

from __future__ import annotations

import threading
import time

import pytest

from shared.adapters.inprocess_bus import InProcessBus
from shared.contracts.envelope import OutboundMessage, ReceivedMessage


class _Gauge:
    """How many handlers run at once, and the most there ever were."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = 0
        self.most = 0
        self.seen: list[bytes] = []

    def enter(self, message: ReceivedMessage) -> None:
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
            self.seen.append(message.data)

    def leave(self) -> None:
        with self.lock:
            self.inside -= 1


def _messages(count: int) -> list[OutboundMessage]:
    return [OutboundMessage(str(i).encode()) for i in range(count)]


def _publish_and_drain(bus: InProcessBus, count: int) -> None:
    """Publish `count` messages to topic "t", wait until none is in flight, close the bus."""
    try:
        bus.publish("t", _messages(count))
        assert bus.wait_idle(30)
    finally:
        bus.close()


def test_a_capped_subscription_never_runs_more_than_its_cap_and_keeps_order() -> None:
    bus = InProcessBus(workers=8)
    gauge = _Gauge()

    def handler(message: ReceivedMessage) -> None:
        gauge.enter(message)
        time.sleep(0.001)  # room for another delivery to start, were the cap not kept (uncapped: the test below)
        gauge.leave()

    bus.subscribe("t", handler, "t-sub", max_concurrency=1)
    _publish_and_drain(bus, 40)
    assert gauge.most == 1
    assert gauge.seen == [str(i).encode() for i in range(40)]  # one at a time: in publish order
    assert bus.stats.acked == 40 and bus.stats.dropped == 0


def test_without_a_cap_the_same_handler_overlaps() -> None:
    """What makes the test above able to fail: the same deliveries, uncapped, do run at once."""
    bus = InProcessBus(workers=8)
    gauge = _Gauge()
    both_inside = threading.Barrier(2, timeout=5)

    def handler(message: ReceivedMessage) -> None:
        gauge.enter(message)
        both_inside.wait()
        gauge.leave()

    bus.subscribe("t", handler, "t-sub")
    _publish_and_drain(bus, 2)
    assert gauge.most == 2


def test_a_nack_under_the_cap_is_redelivered_and_waiting_messages_count_in_flight() -> None:
    bus = InProcessBus(workers=4, min_backoff_s=0.001, max_backoff_s=0.01)
    attempts: dict[bytes, int] = {}
    lock = threading.Lock()

    def handler(message: ReceivedMessage) -> None:
        with lock:
            attempts[message.data] = attempts.get(message.data, 0) + 1
        if message.data == b"0" and message.delivery_attempt < 3:
            raise RuntimeError("transient")

    bus.subscribe("t", handler, "t-sub", max_concurrency=2)
    _publish_and_drain(bus, 10)  # wait_idle returns only once the waiting ones and the redeliveries are done
    assert attempts[b"0"] == 3
    assert all(attempts[str(i).encode()] == 1 for i in range(1, 10))
    assert bus.stats.acked == 10 and bus.stats.nacked == 2


def test_close_counts_what_was_still_waiting_as_dropped() -> None:
    bus = InProcessBus(workers=2)
    release = threading.Event()
    inside = threading.Event()

    def handler(message: ReceivedMessage) -> None:
        inside.set()
        release.wait(5)

    bus.subscribe("t", handler, "t-sub", max_concurrency=1)
    bus.publish("t", _messages(5))
    assert inside.wait(5)
    closer = threading.Thread(target=bus.close)  # blocks until the running delivery ends
    closer.start()
    deadline = time.monotonic() + 5
    while bus.stats.dropped < 4 and time.monotonic() < deadline:  # close() has dropped the waiting ones
        time.sleep(0.001)
    release.set()
    closer.join(10)
    assert bus.stats.dropped == 4 and bus.stats.acked == 1


def test_a_cap_below_one_is_refused() -> None:
    bus = InProcessBus(workers=1)
    try:
        with pytest.raises(ValueError, match="max_concurrency"):
            bus.subscribe("t", lambda m: None, "t-sub", max_concurrency=0)
    finally:
        bus.close()


def test_reroute_hands_later_and_waiting_deliveries_to_the_new_handler_up_to_its_cap() -> None:
    """What the embedded runtime does before a large slot's ticks: the first delivery finishes on the old handler,
    the ones waiting behind the old cap of 1 start on the new handler, together up to the new cap."""
    bus = InProcessBus(workers=8)
    release = threading.Event()
    first_started = threading.Event()
    old: list[bytes] = []
    new = _Gauge()
    together = threading.Barrier(3, timeout=10)  # the three waiting deliveries can only pass it side by side

    def old_handler(message: ReceivedMessage) -> None:
        old.append(message.data)
        first_started.set()
        assert release.wait(10)

    def new_handler(message: ReceivedMessage) -> None:
        new.enter(message)
        together.wait()
        new.leave()

    bus.subscribe("t", old_handler, "t-sub", max_concurrency=1)
    try:
        bus.publish("t", _messages(4))
        assert first_started.wait(10)
        bus.reroute("t-sub", new_handler, 3)
        assert bus.wait_idle(0.2) is False  # the first is still held on the old handler
        release.set()
        assert bus.wait_idle(30)
    finally:
        bus.close()
    assert old == [b"0"] and sorted(new.seen) == [b"1", b"2", b"3"] and new.most == 3
    assert bus.stats.nacked == 0
    with pytest.raises(KeyError):
        bus.reroute("no-such-sub", new_handler, 1)
