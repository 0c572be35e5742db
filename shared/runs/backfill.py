"""Backfills: one idempotent run per date of a range, at most `max_active_runs` at a time, failed dates retried.

A backfill is one document, `backfills/{tenant}~{pipeline}~{backfill_id}~{parameters digest}`, holding its dates, the
run of each date that has one, and each date's attempt number. `advance` reads the status of those runs and starts
dates that have none while fewer than `max_active_runs` are QUEUED or RUNNING; the rest wait (`waiting: true`) and are
started by the next `advance`: a repeated backfill request, `cloudact backfill` following its runs, or the maintenance
tick (`advance_waiting`, on GCP every few minutes from Cloud Scheduler, locally from the UI server's ticker).

A *repeated* request also retries: each date whose run FAILED, TIMED_OUT or was CANCELLED gets attempt n + 1 under a
new idempotency key. The first attempt keeps the key `backfill:{id}:{pipeline}:{date}:{digest}`, so a repeat never
starts a second run for a date that has one, whoever repeats it. Starting runs happens under a short lease on the
document, so two advances at once cannot exceed the limit.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from shared import logs
from shared.clock import iso, parse_iso, utc_now
from shared.contracts.messages import Trigger
from shared.contracts.state_paths import run_path
from shared.contracts.states import ACTIVE, RERUNNABLE, RunStatus
from shared.errors import BadRequest, TooManyRequests
from shared.ports.state import Doc, Filter, set_fields_if
from shared.runs.admission import load_admitted_pipeline
from shared.runs.operations import start_run
from shared.runtime.context import Context

log = logs.get_logger(__name__)
COLLECTION = "backfills"
DEFAULT_MAX_ACTIVE_RUNS = 16
MAX_BACKFILL_DAYS = 366
"""Dates one backfill covers at most (a year, leap day included)."""
"""As Airflow's default max_active_runs: a long range never floods the tenant's concurrency slots at once."""
LEASE_S = 30.0


@dataclass(frozen=True)
class BackfillRequest:
    tenant_id: str
    pipeline_id: str
    start_date: date
    end_date: date
    parameters: dict[str, Any] = field(default_factory=dict)
    backfill_id: str = "default"
    max_active_runs: int = DEFAULT_MAX_ACTIVE_RUNS

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.parameters, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @property
    def path(self) -> str:
        return f"{COLLECTION}/{self.tenant_id}~{self.pipeline_id}~{self.backfill_id}~{self.digest}"

    def dates(self) -> list[str]:
        days = (self.end_date - self.start_date).days + 1
        return [(self.start_date + timedelta(days=offset)).isoformat() for offset in range(days)]


@dataclass
class BackfillState:
    """What `advance` found and did: the run of each date, the dates still waiting, why starting stopped."""

    runs: list[Doc]
    """`{run_date, run_id, status, created, attempt}` per date that has a run, in date order."""
    waiting_dates: list[str]
    retried_dates: list[str]
    max_active_runs: int
    stopped_because: TooManyRequests | None = None

    @property
    def created_any(self) -> bool:
        return any(r["created"] for r in self.runs)

    def as_body(self, pipeline_id: str, backfill_id: str) -> Doc:
        active = sum(1 for r in self.runs if r["status"] in ACTIVE)
        out: Doc = {
            "pipeline_id": pipeline_id,
            "backfill_id": backfill_id,
            "max_active_runs": self.max_active_runs,
            "runs": self.runs,
            "pending_dates": self.waiting_dates,
            "retried_dates": self.retried_dates,
            "active_runs": active,
            "complete": not self.waiting_dates,
            "succeeded": not self.waiting_dates and all(r["status"] == RunStatus.SUCCEEDED for r in self.runs),
        }
        if self.stopped_because is not None:
            out["stopped_because"] = self.stopped_because.to_body()
        return out


def run_key(request: BackfillRequest, day: str, attempt: int) -> str:
    key = f"backfill:{request.backfill_id}:{request.pipeline_id}:{day}:{request.digest}"
    return key if attempt <= 1 else f"{key}:retry{attempt}"


def start_backfill(
    ctx: Context, request: BackfillRequest, user_id: str | None, retry_failed: bool = True
) -> BackfillState:
    """A backfill as a caller asks for it (the API route, hence `cloudact backfill`): the range is checked and the
    pipeline looked up before anything is recorded, and a request that could start no run at all (a quota stop before
    its first date) is that refusal rather than an empty backfill."""
    days = (request.end_date - request.start_date).days + 1
    if days < 1:
        raise BadRequest("end_date must not be before start_date", {"field": "end_date"})
    if days > MAX_BACKFILL_DAYS:
        raise BadRequest(f"a backfill covers at most {MAX_BACKFILL_DAYS} days", {"field": "end_date"})
    load_admitted_pipeline(ctx, request.tenant_id, request.pipeline_id)  # 404 for an unknown pipeline
    state = submit(ctx, request, user_id, retry_failed)
    if state.stopped_because is not None and not state.runs:
        raise state.stopped_because
    return state


def submit(ctx: Context, request: BackfillRequest, user_id: str | None, retry_failed: bool = True) -> BackfillState:
    """Record (or update) the backfill, retry its failed dates (unless told not to), start what the limit allows."""
    now = iso(utc_now())
    doc: Doc = {
        "tenant_id": request.tenant_id,
        "pipeline_id": request.pipeline_id,
        "backfill_id": request.backfill_id,
        "parameters": request.parameters,
        "dates": request.dates(),
        "max_active_runs": request.max_active_runs,
        "user_id": user_id,
        "runs": {},
        "attempts": {},
        "waiting": True,
        "created_at": now,
        "updated_at": now,
    }
    if not ctx.state.create(request.path, doc):
        changes = {"dates": doc["dates"], "max_active_runs": request.max_active_runs, "updated_at": now}
        set_fields_if(ctx.state, request.path, changes, lambda d: True)
    return advance(ctx, request, retry_failed)


def advance(ctx: Context, request: BackfillRequest, retry_failed: bool = False) -> BackfillState:
    """Start waiting dates up to the limit (and, with `retry_failed`, retry failed ones); see the module docstring."""
    token = secrets.token_hex(8)
    until = iso(utc_now() + timedelta(seconds=LEASE_S))
    held = set_fields_if(
        ctx.state,
        request.path,
        {"lease_owner": token, "lease_until": until},
        lambda d: not d.get("lease_until") or parse_iso(d["lease_until"]) <= utc_now(),
    )
    doc = ctx.state.get(request.path) or {}
    runs: dict[str, str] = dict(doc.get("runs") or {})
    attempts: dict[str, int] = {k: int(v) for k, v in (doc.get("attempts") or {}).items()}
    statuses = {day: str((ctx.state.get(run_path(run_id)) or {}).get("status")) for day, run_id in runs.items()}
    retried: list[str] = []
    created: set[str] = set()
    refusal: TooManyRequests | None = None
    dates = list(doc.get("dates") or request.dates())
    if held:
        if retry_failed:
            for day in dates:
                if statuses.get(day) in RERUNNABLE:
                    attempts[day] = attempts.get(day, 1) + 1
                    runs.pop(day)
                    retried.append(day)
        active = sum(1 for day in dates if statuses.get(day) in ACTIVE)
        trigger = Trigger(type="backfill", user_id=doc.get("user_id"))
        for day in dates:
            if day in runs or active >= int(doc.get("max_active_runs") or request.max_active_runs):
                continue
            parameters = {**request.parameters, "run_date": day}
            key = run_key(request, day, attempts.get(day, 1))
            try:
                run = start_run(ctx, request.tenant_id, request.pipeline_id, parameters, trigger, key)
            except TooManyRequests as exc:
                refusal = exc
                break
            runs[day], statuses[day] = run.run_id, str(run.doc["status"])
            if run.created:
                created.add(day)
            active += statuses[day] in ACTIVE
        waiting = [day for day in dates if day not in runs]
        fields = {"runs": runs, "attempts": attempts, "waiting": bool(waiting), "lease_owner": None}
        set_fields_if(ctx.state, request.path, {**fields, "lease_until": None, "updated_at": iso(utc_now())},
                      lambda d: d.get("lease_owner") == token)  # fmt: skip
    view = [
        {"run_date": day, "run_id": runs[day], "status": statuses.get(day), "created": day in created,
         "attempt": attempts.get(day, 1)}
        for day in dates if day in runs
    ]  # fmt: skip
    waiting = [day for day in dates if day not in runs]
    limit = int(doc.get("max_active_runs") or request.max_active_runs)
    return BackfillState(view, waiting, retried, limit, refusal)


def request_of(doc: Doc) -> BackfillRequest:
    dates = list(doc["dates"])
    return BackfillRequest(
        str(doc["tenant_id"]),
        str(doc["pipeline_id"]),
        date.fromisoformat(dates[0]),
        date.fromisoformat(dates[-1]),
        dict(doc.get("parameters") or {}),
        str(doc["backfill_id"]),
        int(doc.get("max_active_runs") or DEFAULT_MAX_ACTIVE_RUNS),
    )


def backfill_path_of_run(run: Doc) -> str | None:
    """The backfill document a run belongs to, from its idempotency key (see `run_key`); None for other runs."""
    key = str(run.get("idempotency_key") or "")
    parts = key.split(":")
    if len(parts) < 5 or parts[0] != "backfill":
        return None
    backfill_id, pipeline_id, digest = parts[1], parts[2], parts[4]
    return f"{COLLECTION}/{run.get('tenant_id')}~{pipeline_id}~{backfill_id}~{digest}"


def advance_for_run(ctx: Context, run: Doc) -> int:
    """Start the waiting dates of the backfill `run` belongs to (for the run's end: as earlier dates finish, later
    ones start). Returns how many runs were started; 0 for a run that is not a backfill's."""
    path = backfill_path_of_run(run)
    doc = ctx.state.get(path) if path else None
    if not doc or not doc.get("waiting"):
        return 0
    return sum(1 for r in advance(ctx, request_of(doc)).runs if r["created"])


def advance_waiting(ctx: Context, limit: int = 100) -> int:
    """The maintenance tick's part: start what every backfill with waiting dates may start now; returns how many."""
    started = 0
    for _, doc in ctx.state.list(COLLECTION, [Filter("waiting", "==", True)], limit=limit):
        try:
            state = advance(ctx, request_of(doc))
        except Exception:  # one tenant's broken pipeline must not stop the others' backfills
            log.exception("backfill %s/%s %s: could not advance", doc.get("tenant_id"), doc.get("pipeline_id"),
                          doc.get("backfill_id"))  # fmt: skip
            continue
        started += sum(1 for r in state.runs if r["created"])
    return started
