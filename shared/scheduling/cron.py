"""Cron slots in a time zone, DST-correct, and which of them a tick should fire under the misfire policy.

A *slot* is one scheduled time of a pipeline (an aware datetime in the schedule's zone). Around DST changes:

- spring forward: a wall time that does not exist (02:30 on 2026-03-29 in Europe/Brussels) fires once, at the first
  instant after the gap (03:00+02:00), like Vixie cron and Cloud Scheduler;
- fall back: a wall time that happens twice (02:30 on 2026-10-25) fires once, at its first occurrence, when the hour
  field is fixed (`30 2 * * *`); with a wildcard hour (`0 * * * *`, `*/2`) every elapsed hour fires, so an hourly job
  still runs every hour. A Scheduler tick for the second occurrence maps onto the first, so admission dedups it.

The misfire policy decides what a tick fires besides its own slot, given the newest slot already fired (the cursor):
`skip` fires only the tick's slot, and only when the tick was published within MISFIRE_GRACE of that slot: a tick
older than the cursor, or published long after its slot (a Scheduler outage, `cloudact schedule tick` run hours
after a daily slot), fires nothing. `catch_up` also fires every slot missed since the cursor (at most MAX_CATCH_UP,
the newest ones) and still runs a late, older tick.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

MisfirePolicy = Literal["skip", "catch_up"]
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
SLOT_TOLERANCE = timedelta(seconds=10)
"""A tick published up to this long before a slot belongs to that slot (clock skew between Scheduler and us)."""
MISFIRE_GRACE = timedelta(hours=1)
"""Under `misfire: skip`, how late a tick may be published after its slot and still fire it (what Kubernetes calls
startingDeadlineSeconds). Later than that the slot counts as missed: it is skipped, never run hours late."""
MAX_CATCH_UP = 100
"""Most slots one tick fires under `catch_up`; older missed slots are dropped (and logged) beyond that."""
_SCAN_LIMIT = 100_000
_DST_MARGIN = timedelta(hours=3)


class ScheduleError(ValueError):
    """A cron expression or time zone that cannot be scheduled."""


@dataclass(frozen=True)
class CronSchedule:
    cron: str
    timezone: str = "UTC"
    misfire: MisfirePolicy = "skip"

    def __post_init__(self) -> None:
        expression = MACROS.get(self.cron.strip(), self.cron.strip())
        fields = expression.split()
        if len(fields) != 5 or not croniter.is_valid(expression):
            raise ScheduleError(f"invalid cron expression {self.cron!r} (5 fields: minute hour day month weekday)")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            hint = "use an IANA name such as Europe/Brussels"
            raise ScheduleError(f"unknown time zone {self.timezone!r} ({hint})") from exc
        object.__setattr__(self, "_expression", expression)

    @property
    def expression(self) -> str:
        """The five-field form (macros expanded): what Cloud Scheduler is given."""
        return str(self.__dict__["_expression"])

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def fixed_hour(self) -> bool:
        """True when the hour field names hours (`2`, `2,14`, `1-5`) rather than every N hours (`*`, `*/2`)."""
        return not self.expression.split()[1].startswith("*")

    def _is_second_occurrence(self, slot: datetime) -> bool:
        first = slot.replace(tzinfo=None).replace(tzinfo=self.tz, fold=0)
        return first.utcoffset() != slot.utcoffset()

    def _fires(self, slot: datetime) -> bool:
        return not (self.fixed_hour and self._is_second_occurrence(slot))

    def _forward(self, moment: datetime) -> Iterator[datetime]:
        """Firing slots strictly after `moment`, oldest first. The iterator starts a few hours early because croniter
        started exactly inside a repeated hour loses the second occurrence; walking into it keeps both."""
        it = croniter(self.expression, (moment - _DST_MARGIN).astimezone(self.tz))
        for _ in range(_SCAN_LIMIT):
            slot: datetime = it.get_next(datetime)
            if slot > moment and self._fires(slot):
                yield slot
        raise ScheduleError(f"{self.cron!r}: no slot found within {_SCAN_LIMIT} steps after {moment.isoformat()}")

    def next_after(self, moment: datetime) -> datetime:
        """The first slot strictly after `moment`."""
        return next(self._forward(moment))

    def _backward(self, moment: datetime) -> Iterator[datetime]:
        """Firing slots at or before `moment`, newest first."""
        it = croniter(self.expression, (moment + _DST_MARGIN).astimezone(self.tz))
        for _ in range(_SCAN_LIMIT):
            slot: datetime = it.get_prev(datetime)
            if slot <= moment and self._fires(slot):
                yield slot
        raise ScheduleError(f"{self.cron!r}: no slot found within {_SCAN_LIMIT} steps before {moment.isoformat()}")

    def latest_at_or_before(self, moment: datetime) -> datetime:
        """The newest slot at or before `moment` (what a tick published at `moment` is for)."""
        return next(self._backward(moment))

    def slot_for(self, moment: datetime) -> datetime:
        """The slot a tick at `moment` stands for, allowing SLOT_TOLERANCE of early delivery."""
        return self.latest_at_or_before(moment + SLOT_TOLERANCE)

    def slots_between(self, after: datetime, until: datetime, limit: int = MAX_CATCH_UP) -> list[datetime]:
        """Slots in (after, until], oldest first; at most the newest `limit` of them (walked backwards, so a long
        outage of a per-minute schedule costs `limit` steps, not one per missed minute)."""
        out: list[datetime] = []
        for slot in self._backward(until):
            if slot <= after or len(out) >= limit:
                break
            out.append(slot)
        return out[::-1]


def slots_to_fire(
    schedule: CronSchedule, last_fired: datetime | None, slot: datetime, ticked_at: datetime | None = None
) -> list[datetime]:
    """What a tick for `slot`, published at `ticked_at`, fires, given the newest slot already fired. A repeat of the
    cursor's own slot fires it again: admission dedups it, and a crash between admitting and publishing is repaired
    by the redelivery."""
    # compared in UTC: Python never finds a repeated-hour time equal to the same instant in another zone (PEP 495)
    if last_fired is not None and slot.astimezone(UTC) == last_fired.astimezone(UTC):
        return [slot]
    if schedule.misfire == "catch_up":
        if last_fired is None or slot < last_fired:
            return [slot]
        return schedule.slots_between(last_fired, slot)
    if last_fired is not None and slot < last_fired:
        return []
    if ticked_at is not None and ticked_at - slot > MISFIRE_GRACE:
        return []
    return [slot]


def misfire_reason(schedule: CronSchedule, last_fired: datetime | None, slot: datetime, ticked_at: datetime) -> str:
    """Why a `skip` tick fired nothing, in words for logs and `cloudact schedule tick`."""
    if last_fired is not None and slot < last_fired:
        return f"misfire skipped: newer slot {last_fired.isoformat(timespec='minutes')} already fired"
    late = ticked_at - slot
    return (
        f"misfire skipped: slot is {_duration(late)} old; `misfire: skip` fires a slot at most "
        f"{_duration(MISFIRE_GRACE)} late (`misfire: catch_up` runs it)"
    )


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
