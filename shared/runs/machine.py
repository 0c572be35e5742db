"""ONE guarded transition() for runs and stages.

Every status change goes through `transition`: the rule table says which moves exist, a short list of guards says
when a move is allowed, and the write is a compare-and-set on the document's version, so two workers racing for the
same move cannot both win (the loser gets `applied=False` and the status it lost to).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from shared.clock import iso, parse_iso, utc_now
from shared.contracts.state_paths import run_path
from shared.contracts.states import NO_DOCUMENT, RUN_TRANSITIONS, STAGE_TRANSITIONS, RunStatus, StageStatus, is_terminal
from shared.errors import TransientError
from shared.ports.state import CAS_RETRIES, Doc, StateStore

Kind = Literal["run", "stage"]


@dataclass(frozen=True)
class TransitionRequest:
    kind: Kind
    to: RunStatus | StageStatus
    attempt: int | None = None
    """For stages: the attempt making the move; moves out of RUNNING must come from the attempt that holds it."""
    only_from: frozenset[StageStatus] | frozenset[RunStatus] | None = None
    """Narrow the rule table further for this call (e.g. only QUEUED -> SKIPPED)."""
    fields: Doc = field(default_factory=dict)


@dataclass(frozen=True)
class TransitionResult:
    applied: bool
    status: str
    """The status after the call: the new one when applied, the current one otherwise."""
    doc: Doc
    reason: str = ""


Guard = Callable[[Doc, TransitionRequest], str | None]


def _rule_table(doc: Doc, req: TransitionRequest) -> str | None:
    current = str(doc.get("status"))
    if req.to not in (_RUN_RULES if req.kind == "run" else _STAGE_RULES).get(current, frozenset()):
        return f"{req.kind} cannot go from {current} to {req.to}"
    return None


def _narrowed(doc: Doc, req: TransitionRequest) -> str | None:
    if req.only_from is not None and doc.get("status") not in req.only_from:
        return f"{req.kind} is {doc.get('status')}, expected one of {sorted(map(str, req.only_from))}"
    return None


def _attempt_owner(doc: Doc, req: TransitionRequest) -> str | None:
    if req.kind != "stage" or doc.get("status") != StageStatus.RUNNING or req.attempt is None:
        return None
    held = int(doc.get("attempt", 0))
    if req.to == StageStatus.RUNNING:
        return None if req.attempt > held else f"attempt {req.attempt} cannot take over attempt {held}"
    return None if req.attempt == held else f"attempt {req.attempt} does not hold the stage (attempt {held} does)"


_RUN_RULES: dict[str, frozenset[str]] = {str(k): frozenset(v) for k, v in RUN_TRANSITIONS.items()}
_STAGE_RULES: dict[str, frozenset[str]] = {str(k): frozenset(v) for k, v in STAGE_TRANSITIONS.items()}
"""The tables keyed by the stored strings: a document's status is a plain string (an unknown one has no moves)."""

GUARDS: tuple[Guard, ...] = (_rule_table, _narrowed, _attempt_owner)


def _timestamps(doc: Doc, to: str, now: datetime) -> Doc:
    out: Doc = {"status": str(to), "updated_at": iso(now)}
    if to == RunStatus.RUNNING and not doc.get("started_at"):
        out["started_at"] = iso(now)
    if is_terminal(to):
        out["ended_at"] = iso(now)
        started = doc.get("started_at")
        out["duration_ms"] = int((now - parse_iso(started)).total_seconds() * 1000) if started else 0
    return out


def transition(store: StateStore, path: str, req: TransitionRequest) -> TransitionResult:
    """Apply `req` to the document at `path` if every guard allows it; never raises for a refused move."""
    for _ in range(CAS_RETRIES):
        current = store.get_versioned(path)
        if current is None:
            return TransitionResult(False, NO_DOCUMENT, {}, f"no {req.kind} at {path}")
        for guard in GUARDS:
            reason = guard(current.data, req)
            if reason:
                return TransitionResult(False, str(current.data.get("status")), current.data, reason)
        update = {**_timestamps(current.data, req.to, utc_now()), **req.fields}
        if req.attempt is not None:
            update.setdefault("attempt", req.attempt)
        if store.update_if(path, update, current.version):
            return TransitionResult(True, req.to, {**current.data, **update})
    raise TransientError(f"{path}: too much contention moving to {req.to}")


def transition_run(store: StateStore, run_id: str, to: RunStatus, **fields: Any) -> TransitionResult:
    return transition(store, run_path(run_id), TransitionRequest("run", to, fields=fields))
