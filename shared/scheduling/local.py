"""Cloud Scheduler's stand-in for local runs: find what is due and publish the ticks Scheduler would publish.

The ticks go through the bus to the real scheduled_trigger function, so `cloudact schedule tick` exercises the
production path (cursor, misfire policy, admission dedup) rather than a shortcut.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.catalog.loader import PipelineValidationError, list_pipeline_files, load_pipeline
from shared.clock import iso, utc_now
from shared.contracts import topics
from shared.contracts.envelope import OutboundMessage
from shared.contracts.messages import ScheduleTick
from shared.contracts.state_paths import run_path
from shared.observability import with_trace_context
from shared.runs.store import idempotency_path
from shared.runtime.context import Context
from shared.scheduling.cron import CronSchedule, ScheduleError, misfire_reason, slots_to_fire
from shared.scheduling.trigger import TICKED_AT_ATTRIBUTE, compiled_schedule, last_fired, schedule_idempotency_key


@dataclass(frozen=True)
class ScheduledPipeline:
    tenant_id: str
    pipeline_id: str
    schedule: CronSchedule
    file: Path


@dataclass
class TickOutcome:
    pipeline: ScheduledPipeline
    slot: datetime
    """The slot the tick stands for (the newest at or before `--at`)."""
    previous: datetime | None
    """The newest slot fired before this tick (the cursor)."""
    expected: list[datetime]
    """Slots the misfire policy fires for this tick: [] when the tick is a skipped misfire."""
    existed_before: set[datetime] = field(default_factory=set)
    runs: list[dict[str, Any]] = field(default_factory=list)
    """After the tick: `{slot, run_id, status, new}` per expected slot."""
    skipped_because: str = ""
    """Why the tick fires nothing (misfire policy), when `expected` is empty."""


def scheduled_pipelines(config_dir: Path, tenant_id: str | None = None) -> tuple[list[ScheduledPipeline], list[str]]:
    """Every pipeline with a `schedule`, and the problems (file:line) of files that could not be read."""
    found: list[ScheduledPipeline] = []
    problems: list[str] = []
    for path in list_pipeline_files(config_dir, tenant_id):
        try:
            spec = load_pipeline(path)
        except PipelineValidationError as exc:
            problems.extend(str(issue) for issue in exc.issues)
            continue
        if spec.schedule is None:
            continue
        try:
            schedule = compiled_schedule(spec.schedule.cron, spec.schedule.timezone, spec.schedule.misfire)
        except ScheduleError as exc:
            problems.append(f"{path}: schedule: {exc}")
            continue
        found.append(ScheduledPipeline(path.parent.parent.name, spec.pipeline_id, schedule, path))
    return found, problems


def tick_message(
    tenant_id: str, pipeline_id: str, slot: datetime, ticked_at: datetime | None = None
) -> OutboundMessage:
    """A ScheduleTick as Cloud Scheduler's job publishes it, with the slot made explicit and dated `ticked_at` (the
    `--at` of `cloudact schedule tick`; by default the slot itself, as Scheduler fires on time)."""
    tick = ScheduleTick(tenant_id=tenant_id, pipeline_id=pipeline_id, scheduled_for=slot)
    attributes = {"tenant_id": tenant_id, "pipeline_id": pipeline_id, "kind": "schedule.tick"}
    attributes["scheduled_for"] = iso(slot)
    attributes[TICKED_AT_ATTRIBUTE] = iso(ticked_at or slot)
    return OutboundMessage(tick.to_bytes(), with_trace_context(attributes))


def run_for_slot(ctx: Context, tenant_id: str, pipeline_id: str, slot: datetime) -> dict[str, Any] | None:
    pointer = ctx.state.get(idempotency_path(tenant_id, schedule_idempotency_key(pipeline_id, slot)))
    return ctx.state.get(run_path(str(pointer["run_id"]))) if pointer else None


def plan_ticks(ctx: Context, pipelines: list[ScheduledPipeline], at: datetime) -> list[TickOutcome]:
    """For each pipeline, the tick due at `at` and what it will fire (nothing is published)."""
    out = []
    for pipeline in pipelines:
        slot = pipeline.schedule.latest_at_or_before(at)
        previous = last_fired(ctx, pipeline.tenant_id, pipeline.pipeline_id)
        expected = slots_to_fire(pipeline.schedule, previous, slot, at)
        existed = {s for s in expected if run_for_slot(ctx, pipeline.tenant_id, pipeline.pipeline_id, s)}
        skipped = "" if expected else misfire_reason(pipeline.schedule, previous, slot, at)
        out.append(TickOutcome(pipeline, slot, previous, expected, existed, skipped_because=skipped))
    return out


def fire_due(runtime: Any, at: datetime | None = None, tenant_id: str | None = None, timeout: float = 600.0) -> Any:
    """Publish every due tick on an embedded runtime, wait for the runs to end, and report them.

    Returns `(outcomes, problems, drained)`; `drained` is False when runs were still going at `timeout`.
    """
    ctx: Context = runtime.context
    pipelines, problems = scheduled_pipelines(ctx.settings.config_dir, tenant_id)
    outcomes = plan_ticks(ctx, pipelines, at or utc_now())  # a skipped misfire is not published at all
    now = at or utc_now()
    messages = [tick_message(o.pipeline.tenant_id, o.pipeline.pipeline_id, o.slot, now) for o in outcomes if o.expected]
    if messages:
        runtime.run_ticks_on_workers(len(messages))  # thousands due at once: in worker processes too
        runtime.bus.publish(topics.SCHEDULE_TICKS, messages)
    drained = bool(runtime.wait_idle(timeout))
    for outcome in outcomes:
        p = outcome.pipeline
        for slot in outcome.expected:
            run = run_for_slot(ctx, p.tenant_id, p.pipeline_id, slot) or {}
            outcome.runs.append(
                {
                    "slot": slot,
                    "run_id": run.get("run_id"),
                    "status": run.get("status", "NOT ADMITTED"),
                    "new": slot not in outcome.existed_before,
                }
            )
    return outcomes, problems, drained
