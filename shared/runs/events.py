"""Outbound messages of the engine: stage tasks and status events."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.clock import utc_now
from shared.contracts import topics
from shared.contracts.envelope import OutboundMessage
from shared.contracts.messages import EventType, StageTask, StatusEvent
from shared.contracts.states import RunStatus, StageStatus
from shared.observability import metrics, with_trace_context
from shared.ports.bus import MessageBus
from shared.ports.state import Doc


def _attributes(run: Doc, **extra: str) -> dict[str, str]:
    attrs = {"tenant_id": str(run["tenant_id"]), "run_id": str(run["run_id"]), "pipeline_id": str(run["pipeline_id"])}
    attrs.update(extra)
    return with_trace_context(attrs)


def publish_stage_tasks(bus: MessageBus, run: Doc, stage_ids: Iterable[str], poll_seq: int | None = None) -> None:
    """One stage.task per stage; with `poll_seq`, a re-check of a running job (shared/runs/stage_jobs.py)."""
    messages = [
        OutboundMessage(
            StageTask(
                run_id=run["run_id"],
                tenant_id=run["tenant_id"],
                pipeline_id=run["pipeline_id"],
                stage_id=sid,
                poll_seq=poll_seq,
            ).to_bytes(),
            _attributes(run, stage_id=sid, kind="stage.task"),
        )
        for sid in stage_ids
    ]
    if messages:
        bus.publish(topics.STAGE_TASKS, messages)


def event_id(run_id: str, event_type: str, stage_id: str | None = None, attempt: int | None = None) -> str:
    """Deterministic, so a re-published event (after a crash) is recognisably the same event."""
    return f"{run_id}/{stage_id or '-'}/{event_type}/{attempt or 0}"


def publish_status_event(
    bus: MessageBus,
    run: Doc,
    event_type: EventType,
    status: RunStatus | StageStatus,
    stage: Doc | None = None,
    **fields: Any,
) -> None:
    stage_id = str(stage["stage_id"]) if stage else None
    attempt = int(stage.get("attempt", 0)) if stage else None
    event = StatusEvent(
        event_id=event_id(run["run_id"], event_type, stage_id, attempt),
        type=event_type,
        tenant_id=run["tenant_id"],
        pipeline_id=run["pipeline_id"],
        run_id=run["run_id"],
        stage_id=stage_id,
        status=status,
        attempt=attempt,
        occurred_at=utc_now(),
        **fields,
    )
    attrs = _attributes(run, kind="status.event", event_type=event_type)
    bus.publish(topics.RUN_EVENTS, [OutboundMessage(event.to_bytes(), attrs)])
    if event_type.startswith("run."):
        metrics.record_run_status(status)
