"""The embedded runtime's message bus: Pub/Sub semantics in one process.

At-least-once delivery on a thread pool (parallel branches really run in parallel), nack -> redelivery with
exponential backoff, and after `max_delivery_attempts` the message goes to the subscription's dead-letter topic with
the same attributes real Pub/Sub adds. `duplicate_deliveries=2` delivers every message twice, for drills.
`retain(topic, queue)` stands in for the dead-letter topic's pull subscription: what is published there is also kept
in `queue` (a DeadLetterFile) until an operator acks it, and the bus answers the DeadLetterQueue port from it.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared import logs
from shared.adapters.dead_letter_file import DeadLetterFile
from shared.contracts.envelope import OutboundMessage, ReceivedMessage
from shared.errors import TerminalError, TransientError
from shared.ports.bus import DeadLetter

log = logs.get_logger(__name__)
Handler = Callable[[ReceivedMessage], None]


@dataclass
class Subscription:
    name: str
    topic: str
    handler: Handler
    dead_letter_topic: str | None
    max_delivery_attempts: int
    max_concurrency: int | None = None
    """At most this many deliveries of the subscription at once (None: as many as the pool has workers); the rest
    wait in `waiting`, in order, still counted in flight."""
    running: int = 0
    waiting: deque[tuple[ReceivedMessage, int]] = field(default_factory=deque)


@dataclass(order=True)
class _Scheduled:
    due: float
    seq: int
    sub: Subscription = field(compare=False)
    message: ReceivedMessage = field(compare=False)
    attempt: int = field(compare=False)


@dataclass
class BusStats:
    published: int = 0
    delivered: int = 0
    acked: int = 0
    nacked: int = 0
    dead_lettered: int = 0
    dropped: int = 0


class InProcessBus:
    def __init__(
        self,
        workers: int = 8,
        min_backoff_s: float = 0.01,
        max_backoff_s: float = 0.5,
        max_delivery_attempts: int = 20,
        duplicate_deliveries: int = 1,
    ) -> None:
        self._subs: dict[str, list[Subscription]] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cloudact-bus")
        self._min_backoff_s = min_backoff_s
        self._max_backoff_s = max_backoff_s
        self._max_delivery_attempts = max_delivery_attempts
        self.duplicate_deliveries = duplicate_deliveries
        self._ids = itertools.count(1)
        self._seq = itertools.count()
        # One mutex, two conditions: `_idle` wakes wait_idle() when nothing is in flight any more, `_timer_due` wakes
        # the timer thread when a redelivery is scheduled or the bus closes. A single condition notified on every
        # delivery woke both sleepers per message: two context switches and GIL hand-offs each, which cost more than
        # a small handler (P6's ticks ran 1.6x slower on 8 workers than on 1).
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._timer_due = threading.Condition(self._lock)
        self._pending = 0
        self._timers: list[_Scheduled] = []
        self._closed = False
        self.stats = BusStats()
        self.dead_letters: list[tuple[str, ReceivedMessage]] = []
        self._retained: dict[str, DeadLetterFile] = {}
        self._timer_thread = threading.Thread(target=self._timer_loop, name="cloudact-bus-timer", daemon=True)
        self._timer_thread.start()

    # ------------------------------------------------------------------------------------------------ wiring
    def subscribe(
        self,
        topic: str,
        handler: Handler,
        name: str | None = None,
        dead_letter_topic: str | None = None,
        max_delivery_attempts: int | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        """`max_concurrency` caps the subscription's deliveries at once, like a subscriber's flow control: a handler
        that is Python work end to end gains nothing from more threads under the GIL and loses to their hand-offs."""
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        sub = Subscription(
            name or f"{topic}-sub",
            topic,
            handler,
            dead_letter_topic,
            max_delivery_attempts or self._max_delivery_attempts,
            max_concurrency,
        )
        self._subs.setdefault(topic, []).append(sub)

    def reroute(self, name: str, handler: Handler, max_concurrency: int | None) -> None:
        """Hand subscription `name`'s deliveries from now on to `handler`, at most `max_concurrency` at once (the
        embedded runtime moves a large slot's schedule ticks to worker processes, shared/app/tick_workers.py).
        Deliveries already running finish on the old handler; waiting ones start up to the new cap."""
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        starting: list[tuple[ReceivedMessage, int]] = []
        with self._lock:
            sub = next((s for subs in self._subs.values() for s in subs if s.name == name), None)
            if sub is None:
                raise KeyError(f"no subscription {name!r}")
            sub.handler, sub.max_concurrency = handler, max_concurrency
            while sub.waiting and (max_concurrency is None or sub.running < max_concurrency):
                starting.append(sub.waiting.popleft())
                sub.running += 1
        for message, attempt in starting:
            self._launch(sub, message, attempt)

    def retain(self, topic: str, queue: DeadLetterFile) -> None:
        """Keep every message published to `topic` in `queue` until acked (the dead-letter pull subscription)."""
        self._retained[topic] = queue

    # ------------------------------------------------------------------------------------------------ MessageBus
    def publish(self, topic: str, messages: Sequence[OutboundMessage]) -> list[str]:
        if self._closed:
            raise TransientError("bus is closed")
        ids: list[str] = []
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        for message in messages:
            message_id = str(next(self._ids))
            ids.append(message_id)
            received = ReceivedMessage(message.data, dict(message.attributes), message_id, now, topic)
            with self._lock:
                self.stats.published += 1
            retained = self._retained.get(topic)
            if retained is not None:  # before delivery, as Pub/Sub accepts for every subscription at once
                retained.retain(received)
            for sub in self._subs.get(topic, []):
                for _ in range(self.duplicate_deliveries):
                    self._submit(sub, received, 1)
        return ids

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._timer_due.notify_all()
            for subs in self._subs.values():  # waiting for a turn that will not come: dropped, and said so
                for sub in subs:
                    for message, _ in sub.waiting:
                        log.error("bus closed; message %s for %s dropped", message.message_id, sub.name)
                    self.stats.dropped += len(sub.waiting)
                    self._pending -= len(sub.waiting)
                    sub.waiting.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
        for queue in self._retained.values():
            queue.close()

    # ------------------------------------------------------------------------------------------------ DeadLetterQueue
    def _dead_letter_queue(self) -> DeadLetterFile:
        if len(self._retained) != 1:
            raise TerminalError("this bus keeps no dead-letter queue (retain() the dead-letter topic first)")
        return next(iter(self._retained.values()))

    def peek_dead_letters(self, limit: int) -> list[DeadLetter]:
        return self._dead_letter_queue().peek_dead_letters(limit)

    def ack_dead_letters(self, dead_letter_ids: Collection[str]) -> list[str]:
        return self._dead_letter_queue().ack_dead_letters(dead_letter_ids)

    # ------------------------------------------------------------------------------------------------ delivery
    def _submit(self, sub: Subscription, message: ReceivedMessage, attempt: int) -> None:
        with self._lock:
            self._pending += 1
        self._start(sub, message, attempt)

    def _start(self, sub: Subscription, message: ReceivedMessage, attempt: int) -> None:
        """Hand a message already counted in flight to the pool, or to the subscription's queue when it is at its
        max_concurrency (the delivery that ends next starts it)."""
        with self._lock:
            if sub.max_concurrency is not None and sub.running >= sub.max_concurrency:
                sub.waiting.append((message, attempt))
                return
            sub.running += 1
        self._launch(sub, message, attempt)

    def _launch(self, sub: Subscription, message: ReceivedMessage, attempt: int) -> None:
        try:
            self._pool.submit(self._deliver, sub, message, attempt)
        except RuntimeError:  # pool shut down: the message is not lost silently
            with self._lock:
                sub.running -= 1
                self.stats.dropped += 1
                self._settled()
            log.error("bus closed; message %s for %s dropped", message.message_id, sub.name)

    def _deliver(self, sub: Subscription, message: ReceivedMessage, attempt: int) -> None:
        """Deliver, then go on with the subscription's next waiting message on this same thread: handing it to
        another worker cost a thread switch per message (~15 us against a 1 ms schedule tick)."""
        following: tuple[ReceivedMessage, int] | None = (message, attempt)
        while following is not None:
            message, attempt = following
            acked = self._handle(sub, message, attempt)
            with self._lock:
                self.stats.delivered += 1
                self.stats.acked += 1 if acked else 0
                self._settled()
                following = sub.waiting.popleft() if sub.waiting else None
                if following is None:
                    sub.running -= 1

    def _handle(self, sub: Subscription, message: ReceivedMessage, attempt: int) -> bool:
        """One delivery; False when it was nacked (then redelivered later, or dead-lettered)."""
        delivered = ReceivedMessage(
            message.data, message.attributes, message.message_id, message.publish_time, message.topic, attempt
        )
        try:
            sub.handler(delivered)
        except BaseException as exc:  # a nack, whatever the cause: the message stays alive
            self._nack(sub, message, attempt, exc)
            return False
        return True

    def _settled(self) -> None:
        """One message left flight (caller holds the lock); the last one wakes wait_idle()."""
        self._pending -= 1
        if self._pending == 0:
            self._idle.notify_all()

    def _nack(self, sub: Subscription, message: ReceivedMessage, attempt: int, exc: BaseException) -> None:
        with self._lock:
            self.stats.nacked += 1
        if attempt >= sub.max_delivery_attempts:
            self._dead_letter(sub, message, attempt)
            return
        delay = min(self._max_backoff_s, self._min_backoff_s * 2 ** (attempt - 1))
        hint = getattr(exc, "retry_after_seconds", None)
        if isinstance(hint, int | float) and hint > delay:
            delay = min(float(hint), self._max_backoff_s)
        with self._lock:
            self._pending += 1
            heapq.heappush(
                self._timers, _Scheduled(time.monotonic() + delay, next(self._seq), sub, message, attempt + 1)
            )
            self._timer_due.notify()

    def _dead_letter(self, sub: Subscription, message: ReceivedMessage, attempt: int) -> None:
        with self._lock:
            self.stats.dead_lettered += 1
            self.dead_letters.append((sub.name, message))
        if sub.dead_letter_topic is None:
            with self._lock:
                self.stats.dropped += 1
            log.error(
                "message %s exhausted %d deliveries on %s (no dead-letter topic)", message.message_id, attempt, sub.name
            )
            return
        attrs = dict(message.attributes)
        attrs.update(
            {
                "CloudPubSubDeadLetterSourceDeliveryCount": str(attempt),
                "CloudPubSubDeadLetterSourceSubscription": sub.name,
            }
        )
        self.publish(sub.dead_letter_topic, [OutboundMessage(message.data, attrs)])

    def _timer_loop(self) -> None:
        while True:
            with self._lock:
                while not self._closed and (not self._timers or self._timers[0].due > time.monotonic()):
                    timeout = self._timers[0].due - time.monotonic() if self._timers else None
                    self._timer_due.wait(timeout)
                if self._closed:
                    return
                item = heapq.heappop(self._timers)  # still counted in flight: wait_idle() never sees a false zero
            self._start(item.sub, item.message, item.attempt)

    # ------------------------------------------------------------------------------------------------ waiting
    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no message is in flight or scheduled for redelivery. False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._pending > 0:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(left)
            return True
