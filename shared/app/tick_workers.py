"""Schedule ticks on worker processes, for a slot at which thousands of schedules fall due at once.

A tick is Python from end to end (YAML, validation, SQLite): one process admits ~1,100 a second on this project's
2-core VMs, and more threads only add GIL hand-offs (shared/app/embedded.py runs them one at a time). On GCP, Cloud
Scheduler's ticks spread over function instances; on the embedded runtime `TickWorkers` runs the real
`scheduled_trigger` entry point in N processes, each with its own Context on the same state file (the SQLite store
serialises their writes with a file lock, shared/adapters/sqlite_state.py).

What a worker publishes (run.requested, a dead letter) is collected and handed back with the outcome; the runtime's
process publishes it on its own bus and only then acks the tick, as a function acks only after publishing. A tick that
fails in a worker is raised in the runtime's process, so the bus redelivers it; a worker that dies breaks the pool,
which is replaced, and the tick is redelivered. Ticks are idempotent (the slot's idempotency key): a redelivery
admits nothing twice.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from shared import logs
from shared.contracts import topics
from shared.contracts.envelope import OutboundMessage, ReceivedMessage
from shared.errors import TransientError
from shared.runtime.context import Context, set_context
from shared.runtime.settings import Settings

log = logs.get_logger(__name__)

TICKS_PER_PROCESS = 2_000
"""Below this many due ticks per worker, ticks stay in the runtime's process: starting a worker (an interpreter and
the imports) costs ~1-2 s, what 1,000-2,000 ticks cost on one thread."""
FUNCTION = topics.SUBSCRIBERS[topics.SCHEDULE_TICKS]


def tick_processes_for(due_ticks: int, cpus: int | None = None) -> int:
    """Worker processes for `due_ticks` ticks: 0 (the runtime's own process) unless at least two workers each get
    TICKS_PER_PROCESS, else one per CPU at most. One worker alone would only move the work to another process."""
    workers = min(cpus or os.cpu_count() or 1, due_ticks // TICKS_PER_PROCESS)
    return workers if workers >= 2 else 0


@dataclass(frozen=True)
class TickOutcome:
    """What one tick did in a worker: the messages to publish, or why it must be redelivered."""

    published: tuple[tuple[str, tuple[OutboundMessage, ...]], ...]
    failure: str | None = None
    retry_after_s: float | None = None


class TickWorkers:
    """Processes running `scheduled_trigger`, one tick at a time each, over a pipe; `deliver` is the tick
    subscription's handler (at most `processes` deliveries at once).

    Plain pipes, not a ProcessPoolExecutor: its manager and feeder threads cost the runtime's process ~75 % of a core
    at ~1,100 ticks a second (measured: 10,000 ticks on two workers took as long as on one thread)."""

    def __init__(self, settings: Settings, processes: int, publish: Callable[[str, list[OutboundMessage]], Any]):
        if processes < 1:
            raise ValueError(f"processes must be at least 1, got {processes}")
        self.settings = settings
        self.processes = processes
        self._publish = publish
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    @property
    def max_concurrency(self) -> int:
        return self.processes

    def start(self) -> None:
        """Start every worker and wait until each has built its Context (fails here if one cannot)."""
        with self._lock:
            # all launched before any is awaited: their interpreters start and import side by side (~1 s each)
            launched = [_Worker.launch(self.settings) for _ in range(self.processes - len(self._workers))]
            try:
                for worker in launched:
                    worker.wait_ready()
            except BaseException:
                for worker in launched:
                    worker.stop()
                raise
            for worker in launched:
                self._workers.append(worker)
                self._idle.put(worker)

    def deliver(self, message: ReceivedMessage) -> None:
        """Run one tick in a worker; publish what it published, then return (the bus acks). Raises to nack."""
        worker = self._idle.get()
        try:
            outcome = worker.run(message)
        except (EOFError, OSError) as exc:  # the worker died mid-tick: a new one takes its place
            worker = self._replace(worker)
            raise TransientError(f"a schedule-tick worker died; the tick is redelivered: {exc!r}", 1.0) from exc
        finally:
            self._idle.put(worker)
        for topic, messages in outcome.published:
            self._publish(topic, list(messages))
        if outcome.failure is not None:
            raise TransientError(outcome.failure, outcome.retry_after_s or 1.0)

    def _replace(self, dead: _Worker) -> _Worker:
        dead.stop()
        with self._lock:
            if self._closed:  # closing: the dead one goes back to an idle queue nobody reads
                return dead
            log.error("schedule-tick worker %s died: starting another", dead.process.pid)
            worker = _Worker.spawn(self.settings)
            self._workers[self._workers.index(dead)] = worker
        return worker

    def close(self) -> None:
        """Stop the workers after the tick each is running (the bus has stopped delivering)."""
        with self._lock:
            self._closed = True
            workers, self._workers = self._workers, []
        for worker in workers:
            worker.stop()


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    to_worker: Connection
    from_worker: Connection

    @classmethod
    def spawn(cls, settings: Settings) -> _Worker:
        worker = cls.launch(settings)
        worker.wait_ready()
        return worker

    @classmethod
    def launch(cls, settings: Settings) -> _Worker:
        """A fresh interpreter running shared.app.tick_worker_main over two pipes. Not multiprocessing: its spawn
        runs the parent's main script again in the child (a script without a __main__ guard would start the whole
        job there), and fork would copy this process's threads mid-flight."""
        tasks_r, tasks_w = os.pipe()
        outcomes_r, outcomes_w = os.pipe()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # where this process found us
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "shared.app.tick_worker_main", str(tasks_r), str(outcomes_w)],
                pass_fds=(tasks_r, outcomes_w),
                env=env,
            )
        finally:
            os.close(tasks_r)
            os.close(outcomes_w)
        worker = cls(process, Connection(tasks_w, readable=False), Connection(outcomes_r, writable=False))
        worker.to_worker.send(settings)
        return worker

    def wait_ready(self) -> None:
        """Until the worker has built its Context; RuntimeError if it died first (its stderr says why)."""
        try:
            ready = self.from_worker.recv()
        except EOFError:
            ready = None
        if ready != _READY:
            self.stop()
            raise RuntimeError(f"a schedule-tick worker did not start (exit code {self.process.poll()})")

    def run(self, message: ReceivedMessage) -> TickOutcome:
        self.to_worker.send(message)
        outcome: TickOutcome = self.from_worker.recv()
        return outcome

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.to_worker.send(None)
        self.to_worker.close()
        self.from_worker.close()
        try:
            self.process.wait(5.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_READY = "ready"


# -- in the worker processes -----------------------------------------------------------------------------------------


class _CollectingBus:
    """A worker's bus: keeps what the tick publishes, for the runtime's process to publish before it acks."""

    def __init__(self) -> None:
        self.published: list[tuple[str, tuple[OutboundMessage, ...]]] = []
        self._ids = itertools.count()

    def publish(self, topic: str, messages: Sequence[OutboundMessage]) -> list[str]:
        self.published.append((topic, tuple(messages)))
        return [f"tick-worker-{os.getpid()}-{next(self._ids)}" for _ in messages]

    def close(self) -> None:
        self.published.clear()


def serve(tasks: Connection, outcomes: Connection) -> None:
    """A worker's life (shared.app.tick_worker_main): build a Context on the settings it is sent (its own SQLite
    connection, a collecting bus), then run each tick it is sent until it is sent None or the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runtime's to handle: it closes the pipes, we exit
    settings: Settings = tasks.recv()
    bus = _CollectingBus()
    context = Context(settings, _bus=bus)
    set_context(context)
    entry = getattr(importlib.import_module(f"functions.{FUNCTION}"), FUNCTION)  # what root main.py deploys
    outcomes.send(_READY)
    try:
        while (message := tasks.recv()) is not None:
            outcomes.send(_run_tick(context, bus, entry, message))
    except EOFError:  # the runtime's process is gone
        pass
    finally:
        context.close()


def _run_tick(
    context: Context, bus: _CollectingBus, entry: Callable[[Any], Any], message: ReceivedMessage
) -> TickOutcome:
    from shared.app.embedded import to_cloud_event

    bus.published.clear()
    try:
        entry(to_cloud_event(context.settings.project, message))
    except Exception as exc:  # the entry point raises to nack: the runtime's process raises it again
        retry_after = getattr(exc, "retry_after_seconds", None)
        failure = f"{type(exc).__name__}: {exc}"
        return TickOutcome(tuple(bus.published), failure, float(retry_after) if retry_after else None)
    return TickOutcome(tuple(bus.published))
