"""The Cloud Scheduler jobs production needs, as terraform/ declares them (tests/unit/test_terraform.py checks).

One job per scheduled pipeline publishes a static ScheduleTick to `cdp-schedule-ticks` on the pipeline's cron, in
its time zone; one maintenance job publishes a MaintenanceTick every few minutes. Scheduler cannot put the schedule
time into the message, so the tick carries none and scheduled_trigger dates it by its publish time.
"""

from __future__ import annotations

import json
from typing import Final

MAINTENANCE_JOB: Final = "cdp-maintenance-watchdog"
MAINTENANCE_SCHEDULE: Final = "*/5 * * * *"


def scheduler_job_name(tenant_id: str, pipeline_id: str) -> str:
    """`cdp-schedule--{tenant}--{pipeline}`: ids never contain `--`, so the name is unambiguous."""
    return f"cdp-schedule--{tenant_id}--{pipeline_id}"


def schedule_tick_body(tenant_id: str, pipeline_id: str) -> bytes:
    """The static message of a pipeline's job (a ScheduleTick without scheduled_for)."""
    return json.dumps(
        {"kind": "schedule.tick", "version": 1, "tenant_id": tenant_id, "pipeline_id": pipeline_id},
        separators=(",", ":"),
    ).encode()


def schedule_tick_attributes(tenant_id: str, pipeline_id: str) -> dict[str, str]:
    return {"tenant_id": tenant_id, "pipeline_id": pipeline_id, "kind": "schedule.tick"}
