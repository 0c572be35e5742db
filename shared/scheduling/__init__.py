"""Scheduled runs: cron slots (DST-correct), misfire policy, and the tick -> admission -> run.requested path.

`cron` computes slots, `trigger` is the scheduled_trigger function's work, `local` fires what is due on the
embedded runtime (`cloudact schedule tick`), standing in for Cloud Scheduler.
"""

from __future__ import annotations

from shared.scheduling.cron import CronSchedule, ScheduleError, slots_to_fire
from shared.scheduling.trigger import (
    FiredSlot,
    publish_time_of,
    schedule_idempotency_key,
    trigger_scheduled_run,
)

__all__ = [
    "CronSchedule",
    "FiredSlot",
    "ScheduleError",
    "publish_time_of",
    "schedule_idempotency_key",
    "slots_to_fire",
    "trigger_scheduled_run",
]
