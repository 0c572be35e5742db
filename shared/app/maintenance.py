"""The maintenance function's two inputs: watchdog ticks and dead-lettered messages (told apart by topic/attributes)."""

from __future__ import annotations

from typing import Any

from shared import logs, observability
from shared.contracts import topics
from shared.contracts.envelope import decode_cloud_event
from shared.contracts.messages import MaintenanceTick, parse_message
from shared.errors import UndecodableMessage
from shared.runs.recovery import handle_dead_letter
from shared.runs.watchdog import record_dead_letter, summary, watchdog
from shared.runtime.context import get_context

log = logs.get_logger(__name__)
_DEAD_LETTER_MARKERS = ("CloudPubSubDeadLetterSourceDeliveryCount", "cdp_dead_letter_reason")


def handle_maintenance_event(cloud_event: Any) -> None:
    ctx = get_context()
    logs.configure(ctx.settings.log_level)
    observability.configure(ctx.settings)
    try:
        received = decode_cloud_event(cloud_event)
    except UndecodableMessage as exc:
        log.error("maintenance got an undecodable event, dropped: %s", exc)
        return
    with (
        observability.pubsub_span("maintenance", received, {}),
        logs.log_context(
            function="maintenance",
            message_id=received.message_id,
            run_id=received.attributes.get("run_id"),
            tenant_id=received.attributes.get("tenant_id"),
        ),
    ):
        if received.topic == topics.DEAD_LETTERS or any(m in received.attributes for m in _DEAD_LETTER_MARKERS):
            outcome = handle_dead_letter(ctx, received)
            record_dead_letter(ctx, received, outcome)
            log.warning("dead letter handled: %s", outcome)
            return
        try:
            parse_message(received.data, MaintenanceTick)
        except UndecodableMessage as exc:
            log.error("maintenance tick undecodable, dropped: %s", exc)
            return
        log.info("watchdog: %s", summary(watchdog(ctx)))
        from shared.runs.backfill import advance_waiting

        started = advance_waiting(ctx)  # backfill dates held back by max_active_runs start as room frees up
        if started:
            log.info("backfills: started %d waiting run(s)", started)
