"""The work one warehouse handle has under way (DuckDB cursors, BigQuery jobs), so that it can be stopped.

A step's warehouse session records each statement or job while it runs. When the step's time is up, the engine calls
`cancel` from its own thread: every recorded item is stopped (DuckDB `interrupt()`, BigQuery `jobs.cancel`) and the
session refuses to start anything else, so a processor still looping on its thread cannot begin a new statement.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from shared.errors import TerminalError

log = logging.getLogger(__name__)

Item = TypeVar("Item")


class WorkCancelled(TerminalError):
    """The session's work was cancelled (its step timed out); nothing more runs through it."""


class RunningWork(Generic[Item]):
    """Items started through one handle and not finished yet; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Item] = []
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def check(self) -> None:
        """Raise WorkCancelled once `cancel` was called: checked before each statement or job starts."""
        if self._cancelled:
            raise WorkCancelled("the step's warehouse work was cancelled (its time is up)")

    def started(self, item: Item) -> None:
        """Record `item`; raises WorkCancelled (without recording it) if the session was cancelled meanwhile."""
        with self._lock:
            self.check()
            self._items.append(item)

    def finished(self, item: Item) -> None:
        with self._lock:
            self._items = [i for i in self._items if i is not item]  # by identity: jobs may compare equal

    def cancel(self, stop: Callable[[Item], None]) -> bool:
        """Refuse new work and `stop` every item still running; returns whether there was any. Idempotent; safe from
        any thread. Callers repeat it while it returns True: an item recorded but not yet started inside the engine
        when `stop` reached it (a DuckDB interrupt lands only on a running statement) starts anyway.

        `stop` runs under the lock, so an item cannot be finished (a cursor closed) while it is being stopped."""
        with self._lock:
            self._cancelled = True
            for item in self._items:
                try:
                    stop(item)
                except Exception:  # stopping one item must not keep the others running
                    log.warning("could not stop %r", item, exc_info=True)
            return bool(self._items)
