"""Admission: the one gate shared by the HTTP and scheduled paths, and the release of what it reserved.

`admit_run` checks, in order: the pipeline exists, the tenant exists and is active, an idempotency key that already
names a run (returned as is, costing no quota), then reserves the run against the tenant's plan - runs per UTC day,
runs per UTC month and concurrent runs - in ONE compare-and-set on the tenant's admission document
`tenants/{t}/usage/admission`:

    {day, runs_today, month, runs_this_month, active: {run_id: reserved_at}}

Why one document and a compare-and-set (not a transaction, not three counters): the three limits must be reserved
together or not at all, the state store's only multi-field atomic write is `update_if`, and Firestore's pessimistic
transactions collapse under contention while a lost compare-and-set just re-reads and retries. The reservation
happens before the run document is written; a request whose idempotency key turns out to name an existing run gives
its reservation back. Retries are bounded by `CAS_BUDGET_S`: past it the caller gets 503 + Retry-After, never a 500
and never an over-admission.

`release_run_slot` removes the run from `active` (a no-op when it is not there, so it is idempotent); the engine calls
it from `finalize_run` for every terminal state. A slot whose run ended without finalising (or whose run document was
never written after a crash) is reclaimed when the tenant next hits its concurrency limit.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.contracts.messages import Trigger
from shared.errors import BadRequest, ServiceUnavailable, TooManyRequests, TransientError
from shared.pipelines.bounds import check_run_parameters, spec_problem
from shared.pipelines.loader import PipelineValidationError, find_pipeline, pipeline_path
from shared.pipelines.parameters import validate_run_parameters
from shared.pipelines.spec import PipelineSpec
from shared.ports.state import Doc, StateStore
from shared.runs.machine import iso, parse_iso, run_path, set_fields_if, utc_now
from shared.runs.states import is_terminal
from shared.runs.store import CreatedRun, create_run, idempotency_path, new_run_id
from shared.runtime.context import Context
from shared.tenancy.plans import Plan, effective_plan
from shared.tenancy.tenants import get_tenant, require_active

CAS_BUDGET_S = 4.0
"""How long one admission may keep retrying a lost compare-and-set before answering 503."""
ORPHAN_AFTER_S = 300.0
"""A reserved slot whose run document still does not exist after this long was left by a crash: reclaim it."""
CONCURRENCY_RETRY_AFTER_S = 5


class QuotaExceeded(TooManyRequests):
    pass


def admission_path(tenant_id: str) -> str:
    return f"tenants/{tenant_id}/usage/admission"


def admit_run(
    ctx: Context,
    tenant_id: str,
    pipeline_id: str,
    parameters: dict[str, Any],
    trigger: Trigger,
    idempotency_key: str | None = None,
    extra_fields: dict[str, Any] | None = None,
) -> tuple[CreatedRun, PipelineSpec]:
    """Check, reserve and record a QUEUED run (once per idempotency key). Raises ClientError (404/403/429/503).

    `extra_fields` are stored on a newly created run document (e.g. `resume_from_run` for a re-run).
    """
    try:
        spec = find_pipeline(ctx.settings.config_dir, tenant_id, pipeline_id)
    except PipelineValidationError as exc:  # the tenant's YAML is broken: their fix, never a 500
        raise BadRequest(
            f"pipeline {pipeline_id!r} is invalid; fix its YAML (`cloudact pipelines validate`)",
            {"field": "pipeline_id", "issues": [str(issue) for issue in exc.issues][:50]},
        ) from exc
    tenant = get_tenant(ctx, tenant_id)
    check_pipeline_bounds(ctx, tenant_id, spec, parameters, effective_plan(tenant))  # 400/413 naming the field
    parameters = validate_run_parameters(spec, parameters)  # 400 naming parameters.<name>; canonical + defaults
    require_active(tenant)
    if idempotency_key:
        existing = _run_for_key(ctx.state, tenant_id, idempotency_key)
        if existing is not None:
            return CreatedRun(str(existing["run_id"]), False, existing), spec
    run_id = new_run_id()
    _reserve(ctx.state, tenant_id, effective_plan(tenant), run_id, utc_now())
    try:
        created = create_run(ctx.state, tenant_id, pipeline_id, parameters, trigger, idempotency_key, run_id=run_id)
        if created.created and extra_fields:
            set_fields_if(ctx.state, run_path(created.run_id), extra_fields, lambda d: d.get("status") == "QUEUED")
            created = CreatedRun(created.run_id, True, {**created.doc, **extra_fields})
    except BaseException:
        _give_back(ctx.state, tenant_id, run_id, uncount=True)
        raise
    if not created.created:
        _give_back(ctx.state, tenant_id, run_id, uncount=True)  # the key named a run made meanwhile: no charge
    elif created.run_id != run_id:  # the key's crashed first attempt was repaired under its own run id
        _mutate(ctx.state, admission_path(tenant_id), lambda d: _rename_slot(d, run_id, created.run_id))
    return created, spec


def check_pipeline_bounds(
    ctx: Context, tenant_id: str, spec: PipelineSpec, parameters: dict[str, Any], plan: Plan
) -> None:
    """The plan of record's pipeline caps (the loader checked those of the plan tenant.yaml names): the parameters
    given (count, size of each value) and the pipeline itself, so a tenant.yaml edited to name a bigger plan buys
    nothing."""
    check_run_parameters(parameters, plan)
    path = pipeline_path(ctx.settings.config_dir, tenant_id, spec.pipeline_id)
    problem = spec_problem(spec, path.stat().st_size, plan)
    if problem:
        raise BadRequest(
            f"pipeline {spec.pipeline_id!r} is over the tenant's plan: {problem}",
            {"field": "pipeline_id", "plan": plan.name},
        )


def release_run_slot(ctx: Context, run: dict[str, Any]) -> None:
    """Give back the concurrency slot of a terminal run. Idempotent: a second call finds nothing to remove."""
    _give_back(ctx.state, str(run["tenant_id"]), str(run["run_id"]), uncount=False)


def usage(ctx: Context, tenant_id: str, now: datetime | None = None) -> dict[str, Any]:
    """Today's and this month's admitted runs and the runs holding a slot, with the effective plan."""
    now = now or utc_now()
    tenant = get_tenant(ctx, tenant_id)
    plan = effective_plan(tenant)
    data = _rolled((ctx.state.get(admission_path(tenant_id)) or {}), now)
    return {
        "tenant_id": tenant_id,
        "status": tenant.get("status"),
        "plan": plan.as_dict(),
        "day": data["day"],
        "runs_today": data["runs_today"],
        "month": data["month"],
        "runs_this_month": data["runs_this_month"],
        "concurrent_runs": len(data["active"]),
        "active_run_ids": sorted(data["active"]),
        "remaining": {
            "runs_today": max(0, plan.runs_per_day - data["runs_today"]),
            "runs_this_month": max(0, plan.runs_per_month - data["runs_this_month"]),
            "concurrent_runs": max(0, plan.concurrent_runs - len(data["active"])),
        },
    }


# ---------------------------------------------------------------------------------------------- internals


def _run_for_key(state: StateStore, tenant_id: str, key: str) -> Doc | None:
    pointer = state.get(idempotency_path(tenant_id, key))
    return state.get(run_path(str(pointer["run_id"]))) if pointer else None


def _rolled(data: Doc, now: datetime) -> Doc:
    """The admission document as of `now`: counts start again on a new UTC day / month."""
    day, month = now.date().isoformat(), now.strftime("%Y-%m")
    same_day, same_month = data.get("day") == day, data.get("month") == month
    return {
        "day": day,
        "runs_today": int(data.get("runs_today", 0)) if same_day else 0,
        "month": month,
        "runs_this_month": int(data.get("runs_this_month", 0)) if same_month else 0,
        "active": dict(data.get("active") or {}),
    }


def _seconds_to_next_day(now: datetime) -> int:
    tomorrow = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    return max(1, int((tomorrow - now).total_seconds()) + 1)


def _seconds_to_next_month(now: datetime) -> int:
    first = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    return max(1, int((first - now).total_seconds()) + 1)


def _check(data: Doc, plan: Plan, now: datetime) -> None:
    if data["runs_today"] >= plan.runs_per_day:
        raise QuotaExceeded(
            f"daily run quota reached ({plan.runs_per_day} runs per UTC day)",
            _seconds_to_next_day(now),
            {"limit": "runs_per_day", "value": plan.runs_per_day, "used": data["runs_today"]},
        )
    if data["runs_this_month"] >= plan.runs_per_month:
        raise QuotaExceeded(
            f"monthly run quota reached ({plan.runs_per_month} runs per UTC month)",
            _seconds_to_next_month(now),
            {"limit": "runs_per_month", "value": plan.runs_per_month, "used": data["runs_this_month"]},
        )
    if len(data["active"]) >= plan.concurrent_runs:
        raise QuotaExceeded(
            f"concurrent run limit reached ({plan.concurrent_runs} runs queued or running)",
            CONCURRENCY_RETRY_AFTER_S,
            {"limit": "concurrent_runs", "value": plan.concurrent_runs, "used": len(data["active"])},
        )


def _reclaimable(state: StateStore, active: dict[str, str], now: datetime) -> list[str]:
    """Slots held by runs that ended without releasing them, or whose run was never written (a crash)."""
    out = []
    for run_id, reserved_at in active.items():
        run = state.get(run_path(run_id))
        if run is None:
            if (now - parse_iso(reserved_at)).total_seconds() > ORPHAN_AFTER_S:
                out.append(run_id)
        elif is_terminal(str(run.get("status"))):
            out.append(run_id)
    return out


def _backoff(attempt: int, deadline: float) -> None:
    if time.monotonic() > deadline:
        raise ServiceUnavailable("admission is contended right now; retry shortly", 1, {"reason": "contention"})
    time.sleep(random.uniform(0, min(0.05, 0.0005 * 2 ** min(attempt, 7))))


def _reserve(state: StateStore, tenant_id: str, plan: Plan, run_id: str, now: datetime) -> None:
    path = admission_path(tenant_id)
    deadline = time.monotonic() + CAS_BUDGET_S
    stale: set[str] | None = None
    attempt = 0
    while True:
        current = state.get_versioned(path)
        data = _rolled(current.data if current else {}, now)
        if len(data["active"]) >= plan.concurrent_runs and stale is None:
            stale = set(_reclaimable(state, data["active"], now))
        for run_id_to_drop in stale or ():
            data["active"].pop(run_id_to_drop, None)
        _check(data, plan, now)
        data["runs_today"] += 1
        data["runs_this_month"] += 1
        data["active"][run_id] = iso(now)
        data["updated_at"] = iso(now)
        won = state.update_if(path, data, current.version) if current else state.create(path, data)
        if won:
            return
        attempt += 1
        _backoff(attempt, deadline)


def _mutate(state: StateStore, path: str, change: Callable[[Doc], Doc | None]) -> None:
    """Compare-and-set `change(doc)` until it sticks; `change` returning None means nothing to do."""
    deadline = time.monotonic() + CAS_BUDGET_S
    attempt = 0
    while True:
        current = state.get_versioned(path)
        if current is None:
            return
        update = change(current.data)
        if update is None or state.update_if(path, update, current.version):
            return
        attempt += 1
        if time.monotonic() > deadline:
            raise TransientError(f"{path}: too much contention releasing a slot", retry_after_seconds=1.0)
        time.sleep(random.uniform(0, min(0.05, 0.0005 * 2 ** min(attempt, 7))))


def _without_slot(data: Doc, run_id: str, uncount: bool) -> Doc | None:
    active = dict(data.get("active") or {})
    reserved_at = active.pop(run_id, None)
    if reserved_at is None:
        return None
    update: Doc = {"active": active}
    if uncount:  # a reservation that never became a run: its counts are given back too (same day/month only)
        reserved = parse_iso(reserved_at)
        if data.get("day") == reserved.date().isoformat():
            update["runs_today"] = max(0, int(data.get("runs_today", 0)) - 1)
        if data.get("month") == reserved.strftime("%Y-%m"):
            update["runs_this_month"] = max(0, int(data.get("runs_this_month", 0)) - 1)
    return update


def _rename_slot(data: Doc, old: str, new: str) -> Doc | None:
    active = dict(data.get("active") or {})
    if old not in active:
        return None
    active[new] = active.pop(old)
    return {"active": active}


def _give_back(state: StateStore, tenant_id: str, run_id: str, uncount: bool) -> None:
    _mutate(state, admission_path(tenant_id), lambda d: _without_slot(d, run_id, uncount))
