"""Cron slots across DST changes (Europe/Brussels, 2026) and the misfire policy, without any runtime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.scheduling.cron import MISFIRE_GRACE, CronSchedule, ScheduleError, misfire_reason, slots_to_fire

BRUSSELS = "Europe/Brussels"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def as_utc(slots: list[datetime]) -> list[str]:
    return [s.astimezone(UTC).strftime("%m-%d %H:%M") for s in slots]


def test_daily_0300_brussels_follows_the_wall_clock_through_both_dst_changes() -> None:
    s = CronSchedule("0 3 * * *", BRUSSELS)
    spring = s.slots_between(utc(2026, 3, 27), utc(2026, 3, 31))
    assert [x.isoformat() for x in spring] == [
        "2026-03-27T03:00:00+01:00",
        "2026-03-28T03:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T03:00:00+02:00",
    ]
    assert as_utc(spring) == ["03-27 02:00", "03-28 02:00", "03-29 01:00", "03-30 01:00"]
    autumn = s.slots_between(utc(2026, 10, 23), utc(2026, 10, 27))
    assert as_utc(autumn) == ["10-23 01:00", "10-24 01:00", "10-25 02:00", "10-26 02:00"]


def test_spring_forward_a_skipped_wall_time_fires_once_right_after_the_gap() -> None:
    s = CronSchedule("30 2 * * *", BRUSSELS)  # 02:30 does not exist on 2026-03-29
    slots = s.slots_between(utc(2026, 3, 28, 12), utc(2026, 3, 30, 12))
    assert [x.isoformat() for x in slots] == ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]
    # a Scheduler tick published at the shifted time stands for that slot
    assert s.slot_for(utc(2026, 3, 29, 1, 0, 4)).isoformat() == "2026-03-29T03:00:00+02:00"


def test_fall_back_a_repeated_wall_time_fires_once_and_the_repeat_maps_onto_it() -> None:
    s = CronSchedule("30 2 * * *", BRUSSELS)  # 02:30 happens twice on 2026-10-25
    slots = s.slots_between(utc(2026, 10, 24, 12), utc(2026, 10, 26, 12))
    assert [x.isoformat() for x in slots] == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
    first = s.slot_for(utc(2026, 10, 25, 0, 30, 2))  # 02:30 CEST
    repeat = s.slot_for(utc(2026, 10, 25, 1, 30, 3))  # 02:30 CET: Cloud Scheduler may fire again here
    assert first == repeat and first.isoformat() == "2026-10-25T02:30:00+02:00"


def test_hourly_jobs_run_every_elapsed_hour_on_both_dst_days() -> None:
    s = CronSchedule("0 * * * *", BRUSSELS)
    assert len(s.slots_between(utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))) == 23  # the day has 23 hours
    autumn = s.slots_between(utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))
    assert len(autumn) == 25  # ... and 25: both 02:00 fire, an hour apart
    assert [x.isoformat() for x in autumn[1:3]] == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"]


def test_a_tick_a_few_seconds_early_still_belongs_to_its_slot() -> None:
    s = CronSchedule("0 3 * * *", "UTC")
    assert s.slot_for(utc(2026, 5, 1, 2, 59, 55)) == utc(2026, 5, 1, 3)
    assert s.slot_for(utc(2026, 5, 1, 3, 0, 40)) == utc(2026, 5, 1, 3)
    assert s.slot_for(utc(2026, 5, 1, 2, 58)) == utc(2026, 4, 30, 3)


def test_misfire_policy_skip_and_catch_up() -> None:
    skip = CronSchedule("0 3 * * *", "UTC", "skip")
    catch_up = CronSchedule("0 3 * * *", "UTC", "catch_up")
    d = [utc(2026, 5, day, 3) for day in range(1, 6)]
    assert slots_to_fire(skip, None, d[2]) == [d[2]]  # first tick ever: its own slot only
    assert slots_to_fire(skip, d[0], d[3]) == [d[3]]  # missed days stay missed
    assert slots_to_fire(catch_up, d[0], d[3]) == d[1:4]  # missed days run, oldest first
    assert slots_to_fire(skip, d[3], d[1]) == []  # a late tick older than the newest fired one is dropped
    assert slots_to_fire(catch_up, d[3], d[1]) == [d[1]]  # ... or still runs
    assert slots_to_fire(skip, d[3], d[3]) == [d[3]]  # a redelivery fires again: admission dedups it


def test_misfire_skip_fires_a_slot_only_within_the_grace() -> None:
    skip = CronSchedule("0 3 * * *", "Europe/Brussels", "skip")
    catch_up = CronSchedule("0 3 * * *", "Europe/Brussels", "catch_up")
    slot = datetime.fromisoformat("2026-12-01T03:00:00+01:00")
    on_time, late = slot + timedelta(seconds=2), slot + MISFIRE_GRACE
    sixteen_hours = slot + timedelta(hours=16)
    assert slots_to_fire(skip, None, slot, on_time) == [slot]
    assert slots_to_fire(skip, None, slot, late) == [slot]  # the grace is inclusive
    assert slots_to_fire(skip, None, slot, late + timedelta(seconds=1)) == []
    assert slots_to_fire(skip, slot - timedelta(days=1), slot, sixteen_hours) == []
    assert slots_to_fire(catch_up, None, slot, sixteen_hours) == [slot]  # catch_up runs it late
    assert slots_to_fire(skip, slot, slot, sixteen_hours) == [slot]  # a repeat of the fired slot: same run
    reason = misfire_reason(skip, None, slot, sixteen_hours)
    assert reason == (
        "misfire skipped: slot is 16 h 00 min old; `misfire: skip` fires a slot at most 1 h 00 min late "
        "(`misfire: catch_up` runs it)"
    )


def test_catch_up_after_a_long_outage_is_bounded_to_the_newest_slots() -> None:
    every_minute = CronSchedule("* * * * *", "UTC", "catch_up")
    slots = every_minute.slots_between(utc(2026, 1, 1), utc(2026, 2, 1), limit=100)
    assert len(slots) == 100 and slots[-1] == utc(2026, 2, 1) and slots[0] == utc(2026, 1, 31, 22, 21)


@pytest.mark.parametrize(
    ("cron", "tz", "message"),
    [("61 * * * *", "UTC", "invalid cron"), ("0 3 * *", "UTC", "5 fields"), ("0 3 * * *", "Mars/Olympus", "time zone")],
)
def test_bad_schedules_are_refused_with_a_reason(cron: str, tz: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        CronSchedule(cron, tz)


def test_macros_expand_to_five_fields_for_cloud_scheduler() -> None:
    assert CronSchedule("@daily").expression == "0 0 * * *"
    assert CronSchedule("@hourly").fixed_hour is False and CronSchedule("@daily").fixed_hour is True
