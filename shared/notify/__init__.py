"""Notifications. The notifier function calls `deliver_event` for every run/stage status event.

Today it deduplicates by event id and records each event once under `events/{event_id}` with a log line; Slack and
email channels with per-tenant routing plug in here (notifications issue).
"""

from __future__ import annotations

from shared import logs
from shared.contracts.messages import StatusEvent
from shared.runs.machine import iso, utc_now
from shared.runtime.context import Context

log = logs.get_logger("cloudact.notify")


def event_path(event_id: str) -> str:
    return "events/" + event_id.replace("/", ":")


def deliver_event(ctx: Context, event: StatusEvent) -> None:
    record = {**event.model_dump(mode="json", exclude_none=True), "received_at": iso(utc_now())}
    if not ctx.state.create(event_path(event.event_id), record):
        log.info("duplicate event %s dropped", event.event_id)
        return
    level = 40 if event.type.endswith(("failed", "timed_out")) else 20
    log.log(
        level,
        "%s %s%s",
        event.type,
        event.run_id,
        f" stage={event.stage_id}" if event.stage_id else "",
        extra={"fields": {"event_type": event.type, "event_id": event.event_id, "error": event.error}},
    )
