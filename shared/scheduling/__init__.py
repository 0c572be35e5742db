"""Scheduled runs: a Scheduler tick goes through the same admission as the API, deduplicated on the schedule time."""

from __future__ import annotations

from shared import logs
from shared.contracts import topics
from shared.contracts.envelope import OutboundMessage
from shared.contracts.messages import RunRequest, ScheduleTick, Trigger
from shared.errors import ClientError, TerminalError
from shared.runs.machine import iso, parse_iso
from shared.runtime.context import Context
from shared.tenancy.admission import admit_run

log = logs.get_logger("cloudact.scheduling")


def schedule_idempotency_key(tick: ScheduleTick) -> str:
    return f"schedule:{tick.pipeline_id}:{iso(tick.scheduled_for)}"


def trigger_scheduled_run(ctx: Context, tick: ScheduleTick) -> None:
    """Admit and publish the run for one tick; a second delivery of the same tick finds the same run."""
    trigger = Trigger(type="schedule", scheduled_for=tick.scheduled_for)
    try:
        created, _ = admit_run(ctx, tick.tenant_id, tick.pipeline_id, {}, trigger, schedule_idempotency_key(tick))
    except ClientError as exc:
        raise TerminalError(f"scheduled run refused: {exc.message}") from exc
    run = created.doc
    if run["status"] != "QUEUED":
        log.info("tick already started run %s", created.run_id)
        return
    message = RunRequest(
        run_id=created.run_id,
        tenant_id=tick.tenant_id,
        pipeline_id=tick.pipeline_id,
        parameters=dict(run.get("parameters") or {}),
        trigger=trigger,
        requested_at=parse_iso(run["created_at"]),
    )
    ctx.bus.publish(
        topics.RUN_REQUESTS,
        [
            OutboundMessage(
                message.to_bytes(),
                {
                    "tenant_id": tick.tenant_id,
                    "run_id": created.run_id,
                    "pipeline_id": tick.pipeline_id,
                    "kind": "run.requested",
                },
            )
        ],
    )
