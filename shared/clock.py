"""The one clock: every "now" in the product comes from here, so a test can set time instead of sleeping for it.

Times are timezone-aware UTC datetimes; documents store them as ISO-8601 strings with microseconds (`iso`), which
order like the times they name (range queries on the state store rely on that).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from functools import lru_cache
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


_clock: Clock = SystemClock()
_clock_lock = threading.Lock()


def set_clock(clock: Clock) -> Clock:
    """Install `clock` for this process; returns the previous one (tests restore it)."""
    global _clock
    with _clock_lock:
        previous, _clock = _clock, clock
        return previous


def utc_now() -> datetime:
    return _clock.now()


@lru_cache(maxsize=64)
def iso(ts: datetime) -> str:
    """Remembered for the last few instants: one admission writes its `now` into ~6 fields of 4 documents, and
    isoformat() of an aware datetime costs ~2 us (equal datetimes are the same instant, so the same string)."""
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)
