"""Typed views of the run and stage documents, with the questions the engine, recovery and the watchdog ask of them.

A record is read from a state-store document (`from_doc`) and gives it back unchanged (`to_doc`): same keys, same
order, same values, so documents written before the records existed load as they are and nothing needs migrating.
Keys a record does not know are KEPT (in `extra`), deliberately: other modules add fields of their own to these
documents (a job's progress, a finaliser's lease), and a record that dropped them would lose them on the next write.
A status this version does not know is REJECTED (ValueError): acting on it would be a guess. Status changes still go
through shared.runs.machine.transition with the fields to write; a record is what you read, never what you write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar, Self

from shared.clock import parse_iso
from shared.contracts.states import TERMINAL, RunStatus, StageStatus
from shared.ports.state import Doc


def _seconds_until(stamp: str | None, now: datetime) -> float:
    """Seconds from `now` to the ISO time `stamp` (negative once it passed; -inf for none)."""
    return (parse_iso(stamp) - now).total_seconds() if stamp else float("-inf")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Record:
    """from_doc / to_doc for a frozen dataclass whose field names are the document's keys (status parsed), and the
    fields runs and stages share."""

    _REQUIRED: ClassVar[tuple[str, ...]]
    _STATUS: ClassVar[type[RunStatus] | type[StageStatus]]
    _KNOWN: ClassVar[frozenset[str]]
    status: RunStatus | StageStatus
    tenant_id: str = ""
    pipeline_id: str = ""
    error: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    duration_ms: int | None = None
    expire_at: Any = None
    """shared.ports.state.EXPIRE_AT: when Firestore's TTL deletes the document."""
    keys: tuple[str, ...] = ()
    """The document's keys in its order (to_doc gives them back in it)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """The document's keys this record does not know, with their values."""

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Self:
        missing = [k for k in cls._REQUIRED if doc.get(k) is None]
        if missing:
            raise ValueError(f"{cls.__name__}: document has no {', '.join(missing)}")
        known: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in doc.items():
            if key in cls._KNOWN:
                known[key] = value
            else:
                extra[key] = value
        known["status"] = cls._STATUS(doc["status"])  # an unknown status raises ValueError, naming it
        known["keys"], known["extra"] = tuple(doc), extra
        return cls(**known)

    def to_doc(self) -> Doc:
        """The document this record was read from: its keys, in its order, with its values."""
        extra = self.extra
        return {k: extra[k] if k in extra else _stored(getattr(self, k)) for k in self.keys}

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


def _stored(value: Any) -> Any:
    return str(value) if isinstance(value, RunStatus | StageStatus) else value


def _known_keys(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in fields(cls)) - {"keys", "extra"}


@dataclass(frozen=True, slots=True, kw_only=True)
class StageRecord(_Record):
    """`runs/{run_id}/stages/{stage_id}` (created by shared.runs.store.new_stage_doc)."""

    _REQUIRED: ClassVar[tuple[str, ...]] = ("status",)
    """Only the status: every decision about a stage starts from it (tests and tools hold partial stage documents)."""
    _STATUS: ClassVar[type[StageStatus]] = StageStatus

    status: StageStatus
    stage_id: str = ""
    run_id: str = ""
    ps_type: str = ""
    depends_on: list[str] = field(default_factory=list)
    parents_total: int = 0
    parents_done: dict[str, str] = field(default_factory=dict)
    """dependency (or `#g<n>`, a wide join's group) -> its terminal status (shared/runs/dag.py)."""
    dispatched_by: str | None = None
    skip: bool = False
    attempt: int = 0
    max_attempts: int = 1
    attempts: list[dict[str, Any]] = field(default_factory=list)
    attempt_started_at: str | None = None
    lease_until: str | None = None
    """While RUNNING: until when the attempt holding the stage counts as alive."""
    not_before: str | None = None
    """While QUEUED after a failed attempt: when its retry may start (the backoff)."""
    last_error: str | None = None
    redispatched: int = 0
    job_id: str | None = None
    poll_seq: int | None = None
    polled_at: str | None = None
    """A job's last round of polling was claimed at (shared/runs/stage_jobs.py)."""
    round_ended: int | None = None
    """The last round that ended with the job still running: equal to `poll_seq` when no round polls now."""
    job_progress: Any = None
    carried_from: str | None = None
    rows_in: int | None = None
    rows_out: int | None = None
    bytes_processed: int | None = None
    details: Any = None

    def lease_active(self, now: datetime) -> bool:
        """RUNNING under a lease that has not run out: its worker is alive, nobody else may take the stage."""
        return self.status == StageStatus.RUNNING and self.lease_left(now) > 0

    def lease_expired(self, now: datetime) -> bool:
        """RUNNING under a lease that ran out: the worker holding it was lost."""
        return self.status == StageStatus.RUNNING and self.lease_until is not None and self.lease_left(now) <= 0

    def lease_left(self, now: datetime) -> float:
        return _seconds_until(self.lease_until, now)

    def in_backoff(self, now: datetime) -> bool:
        """QUEUED for a retry whose backoff (`not_before`) has not passed: no attempt may start yet."""
        return self.status == StageStatus.QUEUED and self.backoff_left(now) > 0

    def backoff_left(self, now: datetime) -> float:
        return _seconds_until(self.not_before, now)

    def poll_stale(self, now: datetime, after_s: float) -> bool:
        """A job's chain of re-checks broke: its last round was claimed more than `after_s` ago (or never)."""
        return -_seconds_until(self.polled_at, now) > after_s


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord(_Record):
    """`runs/{run_id}` (created by shared.runs.store.create_run)."""

    _REQUIRED: ClassVar[tuple[str, ...]] = ("run_id", "status")
    _STATUS: ClassVar[type[RunStatus]] = RunStatus

    run_id: str
    status: RunStatus
    parameters: dict[str, Any] = field(default_factory=dict)
    trigger: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    resume_from_run: str | None = None
    run_date: str | None = None
    traceparent: str | None = None
    stage_order: list[str] = field(default_factory=list)
    deadline_at: str | None = None
    requeued: int = 0
    failed_stage: str | None = None
    cancelled_by: str | None = None
    finalized: bool = False
    alerted: bool = False
    finalizing_until: str | None = None
    finalizing_by: str | None = None
    history_error: str | None = None

    def past_deadline(self, now: datetime) -> bool:
        return self.deadline_at is not None and _seconds_until(self.deadline_at, now) < 0

    @property
    def finalize_pending(self) -> bool:
        """Ended, but its alert, quota slot or history rows may not all be done (shared/runs/finalize.py)."""
        return self.is_terminal and not self.finalized


StageRecord._KNOWN = _known_keys(StageRecord)
RunRecord._KNOWN = _known_keys(RunRecord)
