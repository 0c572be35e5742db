"""A clock the test moves: installed with shared.clock.set_clock, so TTLs, leases, cooldowns and expiries pass when the
test says so instead of after a wall-clock sleep.

`ManualClock()` stands still until `advance()`; `ManualClock(ticking=True)` also follows real time from where it was
set (for tests where a runtime's own threads wait on the clock and must not see time stop). Use the `manual_clock`
fixture (tests/conftest.py), which installs one and puts the previous clock back afterwards.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from shared.clock import set_clock


class ManualClock:
    def __init__(self, start: datetime | None = None, *, ticking: bool = False) -> None:
        self._base = start if start is not None else datetime.now(UTC)
        if self._base.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._ticking = ticking
        self._since = time.monotonic()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            if not self._ticking:
                return self._base
            return self._base + timedelta(seconds=time.monotonic() - self._since)

    def advance(self, seconds: float | timedelta) -> datetime:
        """Move time forward (never back: product code may rely on it not going backwards); returns the new now."""
        step = seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds)
        if step < timedelta(0):
            raise ValueError(f"a clock does not go back ({step})")
        with self._lock:
            self._base += step
            return self._base if not self._ticking else self._base + timedelta(seconds=time.monotonic() - self._since)


@contextlib.contextmanager
def installed(clock: ManualClock) -> Iterator[ManualClock]:
    """`clock` as the process clock for the block; the previous one is back afterwards, even on failure."""
    previous = set_clock(clock)
    try:
        yield clock
    finally:
        set_clock(previous)
