"""The injectable clock (shared/clock.py) with its test double, and the TTL cache that reads it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.clock import SystemClock, utc_now
from shared.tenancy.cache import TtlCache
from tests.manual_clock import ManualClock, installed

START = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_the_installed_clock_is_every_now_until_the_block_ends_even_on_failure() -> None:
    with pytest.raises(RuntimeError), installed(ManualClock(START)) as clock:
        assert utc_now() == START
        assert clock.advance(90) == utc_now() == START + timedelta(seconds=90)
        raise RuntimeError("the test failed")
    assert abs(utc_now() - SystemClock().now()) < timedelta(seconds=5)


def test_a_manual_clock_only_goes_forward_and_needs_a_time_zone() -> None:
    clock = ManualClock(START)
    with pytest.raises(ValueError, match="does not go back"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2026, 12, 6))


def test_a_cached_entry_lives_its_ttl_on_the_process_clock(manual_clock: ManualClock) -> None:
    cache = TtlCache[str](ttl_s=60, max_entries=10)
    cache.put("key", "value")
    manual_clock.advance(60)
    assert cache.get("key") == "value"  # the TTL is inclusive
    manual_clock.advance(0.001)
    assert cache.get("key") is None


def test_an_entry_from_the_future_is_dropped_when_the_clock_was_stepped_back(manual_clock: ManualClock) -> None:
    cache = TtlCache[str](ttl_s=60, max_entries=10)
    cache.put("key", "value")
    with installed(ManualClock(manual_clock.now() - timedelta(hours=1))):
        assert cache.get("key") is None  # otherwise it would be served for an hour past its TTL
