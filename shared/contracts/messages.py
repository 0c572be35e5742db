"""Versioned message contracts for every topic.

Each message carries `kind` and `version`; its JSON Schema is exported to `shared/contracts/schemas/` (a test keeps the
files in sync). Consumers ignore unknown fields so a producer can add fields without a version bump; removing or
retyping a field needs a new version.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import UndecodableMessage

TriggerType = Literal["api", "schedule", "backfill", "rerun", "cli"]


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class Trigger(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    type: TriggerType = "api"
    user_id: str | None = Field(default=None, description="X-User-ID of the caller; recorded for audit only.")
    scheduled_for: datetime | None = Field(default=None, description="Schedule time for scheduled runs (dedup key).")


class RunRequest(Message):
    """api / scheduled_trigger -> run_starter: a run that was admitted and recorded as QUEUED."""

    kind: Literal["run.requested"] = "run.requested"
    version: Literal[1] = 1
    run_id: str
    tenant_id: str
    pipeline_id: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    trigger: Trigger = Field(default_factory=Trigger)
    requested_at: datetime


class StageTask(Message):
    """run_starter / stage_worker -> stage_worker: run one stage. The attempt is decided by the worker's claim."""

    kind: Literal["stage.task"] = "stage.task"
    version: Literal[1] = 1
    run_id: str
    tenant_id: str
    pipeline_id: str
    stage_id: str
    poll_seq: int | None = Field(
        default=None,
        description="A re-check of the stage's running job: the poll round it is for. A duplicate of an older "
        "round finds the stage past it and does nothing, so the chain of re-checks never forks.",
    )


EventType = Literal[
    "run.started",
    "run.succeeded",
    "run.failed",
    "run.cancelled",
    "run.timed_out",
    "stage.succeeded",
    "stage.failed",
    "stage.retrying",
    "stage.timed_out",
    "stage.skipped",
    "quota.warning",
    "quota.exceeded",
    "dq.failed",
]


class StatusEvent(Message):
    """Run and stage status changes -> notifier. `event_id` is deterministic so duplicates can be dropped."""

    kind: Literal["status.event"] = "status.event"
    version: Literal[1] = 1
    event_id: str
    type: EventType
    tenant_id: str
    pipeline_id: str
    run_id: str
    stage_id: str | None = None
    status: str
    attempt: int | None = None
    error: str | None = None
    duration_ms: int | None = None
    occurred_at: datetime
    details: dict[str, Any] | None = Field(
        default=None, description="Facts for the alert text, e.g. quota used/limit or the failed checks."
    )


class ScheduleTick(Message):
    """Cloud Scheduler -> scheduled_trigger: one scheduled pipeline is due.

    Cloud Scheduler publishes a static message, so its ticks carry no `scheduled_for`: the slot is then the newest
    cron time at or before the publish time. `cloudact schedule tick` sets it explicitly.
    """

    kind: Literal["schedule.tick"] = "schedule.tick"
    version: Literal[1] = 1
    tenant_id: str
    pipeline_id: str
    scheduled_for: datetime | None = Field(
        default=None, description="The slot; absent from Cloud Scheduler's static message (derived from publish time)."
    )


class MaintenanceTick(Message):
    """Cloud Scheduler -> maintenance: run the watchdog now."""

    kind: Literal["maintenance.tick"] = "maintenance.tick"
    version: Literal[1] = 1
    task: Literal["watchdog"] = "watchdog"


CONTRACTS: dict[str, type[Message]] = {
    "run.requested": RunRequest,
    "stage.task": StageTask,
    "status.event": StatusEvent,
    "schedule.tick": ScheduleTick,
    "maintenance.tick": MaintenanceTick,
}

M = TypeVar("M", bound=Message)


def parse_message(raw: bytes, model: type[M]) -> M:
    """Decode bytes into `model`; anything that does not fit is an UndecodableMessage (dead-letter, never retry)."""
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UndecodableMessage(f"message is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise UndecodableMessage("message is not a JSON object")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) or "<root>" for e in exc.errors())
        raise UndecodableMessage(f"message does not match {model.__name__} v1: {fields}") from exc


def json_schemas() -> dict[str, dict[str, Any]]:
    """`{file name: JSON Schema}` for every contract, as committed under shared/contracts/schemas/."""
    return {f"{kind}.v1.json": model.model_json_schema() for kind, model in CONTRACTS.items()}
