"""The scheduled_trigger function's work: a tick -> its slot(s) -> the same admission as the API -> run.requested.

Exactly once per slot, whatever Scheduler and Pub/Sub do:
- the idempotency key is the slot (`schedule:{pipeline}:{slot in UTC}`), so a duplicate publish or redelivery of a
  tick finds the run its first delivery made;
- Cloud Scheduler's Pub/Sub message is static (it cannot carry the schedule time), so a tick without
  `scheduled_for` stands for the newest slot at or before its publish time, which is the same for every
  duplicate of one firing and maps the repeated hour of a DST fall-back onto the first occurrence;
- a cursor `schedules/{tenant}:{pipeline}` remembers the newest slot fired, so the misfire policy can skip stale
  ticks or catch up on missed slots (see cron.slots_to_fire).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from shared import logs
from shared.catalog.compiled import CompiledPipeline, compiled_pipeline
from shared.clock import iso, parse_iso, utc_now
from shared.contracts import topics
from shared.contracts.envelope import OutboundMessage, ReceivedMessage
from shared.contracts.messages import RunRequest, ScheduleTick, Trigger
from shared.contracts.states import RunStatus
from shared.errors import ClientError, ServiceUnavailable, TerminalError, TransientError
from shared.observability import timed_admission, with_trace_context
from shared.ports.state import set_fields_if
from shared.runs.admission import admit_run
from shared.runtime.context import Context
from shared.scheduling.cron import CronSchedule, MisfirePolicy, ScheduleError, misfire_reason, slots_to_fire

log = logs.get_logger(__name__)
MAX_RETRY_AFTER_S = 600.0
"""A refusal that clears within this long (concurrency limit, contention) is retried; a longer one is final."""


@dataclass(frozen=True)
class FiredSlot:
    slot: datetime
    run_id: str
    created: bool
    """False when the slot's run already existed (a duplicate tick)."""


def schedule_idempotency_key(pipeline_id: str, slot: datetime) -> str:
    return f"schedule:{pipeline_id}:{iso(slot)}"


def cursor_path(tenant_id: str, pipeline_id: str) -> str:
    return f"schedules/{tenant_id}:{pipeline_id}"


def last_fired(ctx: Context, tenant_id: str, pipeline_id: str) -> datetime | None:
    doc = ctx.state.get(cursor_path(tenant_id, pipeline_id))
    return parse_iso(doc["last_slot"]) if doc and doc.get("last_slot") else None


def pipeline_schedule(ctx: Context, tenant_id: str, pipeline_id: str) -> tuple[CompiledPipeline, CronSchedule]:
    """The pipeline as its YAML says now, and its schedule (admission reuses the first). TerminalError when there is
    no schedule (a stale Scheduler job)."""
    try:
        pipeline = compiled_pipeline(ctx.settings.config_dir, tenant_id, pipeline_id)
    except ClientError as exc:
        raise TerminalError(f"scheduled run refused: {exc.message}") from exc
    spec = pipeline.spec
    if spec.schedule is None:
        raise TerminalError(f"pipeline {tenant_id}/{pipeline_id} has no schedule; its Scheduler job is stale")
    try:
        return pipeline, compiled_schedule(spec.schedule.cron, spec.schedule.timezone, spec.schedule.misfire)
    except ScheduleError as exc:
        raise TerminalError(f"pipeline {tenant_id}/{pipeline_id}: {exc}") from exc


@lru_cache(maxsize=4096)
def compiled_schedule(cron: str, timezone: str, misfire: MisfirePolicy) -> CronSchedule:
    """Checking a cron expression costs ~40 us of croniter; thousands of tenants share a few schedules."""
    return CronSchedule(cron, timezone, misfire)


@lru_cache(maxsize=16_384)
def slot_of(schedule: CronSchedule, moment: datetime) -> datetime:
    """`schedule.slot_for(moment)`, computed once per (schedule, moment): a tick fan-out of one slot to thousands of
    tenants on the same schedule walks croniter (~0.1 ms) once."""
    return schedule.slot_for(moment)


TICKED_AT_ATTRIBUTE = "ticked_at"
"""Set by the local stand-in for Cloud Scheduler (`cloudact schedule tick --at`): the time the tick stands for."""


def publish_time_of(message: ReceivedMessage) -> datetime | None:
    """When the tick was published: the Pub/Sub publish time (what a static Scheduler tick is dated by), or the local
    scheduler's `ticked_at` attribute; None if unreadable."""
    try:
        ticked_at = message.attributes.get(TICKED_AT_ATTRIBUTE)
        return parse_iso(ticked_at or message.publish_time.replace("Z", "+00:00"))
    except ValueError:
        return None


def trigger_scheduled_run(ctx: Context, tick: ScheduleTick, published_at: datetime | None = None) -> list[FiredSlot]:
    """Admit and publish the run(s) a tick stands for; duplicates of a tick find the runs the first one made."""
    pipeline, schedule = pipeline_schedule(ctx, tick.tenant_id, tick.pipeline_id)
    moment = tick.scheduled_for or published_at or utc_now()
    slot = slot_of(schedule, moment)
    previous = last_fired(ctx, tick.tenant_id, tick.pipeline_id)
    ticked_at = published_at or utc_now()
    slots = slots_to_fire(schedule, previous, slot, ticked_at)
    if not slots:
        log.warning("%s/%s slot %s: %s", tick.tenant_id, tick.pipeline_id, iso(slot),
                    misfire_reason(schedule, previous, slot, ticked_at))  # fmt: skip
        return []
    if len(slots) > 1:
        log.info("catching up %d missed slot(s) since %s", len(slots) - 1, previous and iso(previous))
    fired = [_admit(ctx, tick.tenant_id, tick.pipeline_id, pipeline, s) for s in slots]
    requests = [message for _, message in fired if message is not None]
    if requests:  # one publish for every slot of the tick (a catch-up fires up to MAX_CATCH_UP)
        ctx.bus.publish(topics.RUN_REQUESTS, requests)
    _advance_cursor(ctx, tick.tenant_id, tick.pipeline_id, max(slots))
    return [slot for slot, _ in fired]


def _admit(
    ctx: Context, tenant_id: str, pipeline_id: str, pipeline: CompiledPipeline, slot: datetime
) -> tuple[FiredSlot, OutboundMessage | None]:
    """Admit the slot's run (once per slot) and the run.requested to publish for it: None when it already started.
    A crash before the publish is repaired by the tick's redelivery, which finds the QUEUED run and publishes it."""
    trigger = Trigger(type="schedule", scheduled_for=slot)
    try:
        with timed_admission("schedule"):
            key = schedule_idempotency_key(pipeline_id, slot)
            created, _ = admit_run(ctx, tenant_id, pipeline_id, {}, trigger, key, compiled=pipeline)
    except ServiceUnavailable as exc:
        raise TransientError(f"admission contended: {exc.message}", float(exc.retry_after_seconds)) from exc
    except ClientError as exc:
        retry_after = getattr(exc, "retry_after_seconds", None)
        if exc.status == 429 and isinstance(retry_after, int | float) and retry_after <= MAX_RETRY_AFTER_S:
            raise TransientError(f"scheduled run waits for quota: {exc.message}", float(retry_after)) from exc
        raise TerminalError(f"scheduled run refused: {exc.message}") from exc
    run = created.doc
    if run["status"] == RunStatus.QUEUED:  # (re)publish: run_starter ignores a request for a run that already started
        message = RunRequest(
            run_id=created.run_id,
            tenant_id=tenant_id,
            pipeline_id=pipeline_id,
            parameters=dict(run.get("parameters") or {}),
            trigger=trigger,
            requested_at=parse_iso(run["created_at"]),
        )
        attributes = {"tenant_id": tenant_id, "run_id": created.run_id, "pipeline_id": pipeline_id}
        attributes.update(kind="run.requested", scheduled_for=iso(slot))
        request = OutboundMessage(message.to_bytes(), with_trace_context(attributes))
        return FiredSlot(slot, created.run_id, created.created), request
    log.info("slot %s already started run %s", iso(slot), created.run_id)
    return FiredSlot(slot, created.run_id, created.created), None


def _advance_cursor(ctx: Context, tenant_id: str, pipeline_id: str, slot: datetime) -> None:
    """Move the cursor forward only (compare-and-set): a late, older tick never rewinds it."""
    path = cursor_path(tenant_id, pipeline_id)
    doc = {"tenant_id": tenant_id, "pipeline_id": pipeline_id, "last_slot": iso(slot), "updated_at": iso(utc_now())}
    if ctx.state.create(path, doc):
        return
    set_fields_if(
        ctx.state,
        path,
        {"last_slot": doc["last_slot"], "updated_at": doc["updated_at"]},
        lambda d: not d.get("last_slot") or parse_iso(d["last_slot"]) < slot,
    )
