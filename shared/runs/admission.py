"""Admission: the one gate shared by the HTTP and scheduled paths, and the release of what it reserved.

`admit_run` checks, in order: the pipeline exists, the tenant exists and is active, an idempotency key that already
names a run (returned as is, costing no quota), then reserves the run against the tenant's plan - runs per UTC day,
runs per UTC month and concurrent runs - before the run document is written:

- the day and month quotas are sharded counters (`tenants/{t}/quota_shards/{i}`, shared.tenancy.quota_shards):
  one random shard per admission counts both, by a compare-and-set against that shard's share of each limit, so
  the totals are exact under races;
- the concurrency limit is slot documents (`tenants/{t}/slots/{i}`, i < the limit, shared.tenancy.slots): the run
  writes its id into a free slot with create() or a compare-and-set.

Why no single admission document: Firestore sustains ~1 write/s per document, which capped one tenant near 0.5
runs/s; shards and slots spread one tenant's admissions over hundreds of documents. The shard and the slot are read
first and written after, in that order, so a refusal (429) writes nothing; a write lost to a racing admission gives back
what this attempt had taken and tries other, random documents. Retries are bounded by `CAS_BUDGET_S`: past it the
caller gets 503 + Retry-After, never a 500 and never an over-admission. A request whose idempotency key turns out to
name an existing run gives its reservation back.

`release_run_slot` clears the run's slot (a no-op when it holds none, so it is idempotent); the engine calls it from
`finalize_run` for every terminal state. A slot whose run ended without finalising (or whose run document was never
written after a crash) is reclaimed when the tenant next finds every slot held.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.catalog.compiled import CompiledPipeline, compiled_pipeline
from shared.catalog.loader import PipelineValidationError
from shared.clock import iso, parse_iso, utc_now
from shared.contracts.messages import Trigger
from shared.contracts.state_paths import run_path
from shared.contracts.states import RunStatus, is_terminal
from shared.errors import BadRequest, ServiceUnavailable, TooManyRequests
from shared.pipelines.bounds import check_run_parameters, spec_problem
from shared.pipelines.parameters import validate_run_parameters
from shared.pipelines.spec import PipelineSpec
from shared.plans import Plan, effective_plan
from shared.ports.state import Doc, StateStore, set_fields_if
from shared.runs.store import CreatedRun, create_run, idempotency_path, new_run_id
from shared.runtime.context import Context
from shared.tenancy import quota_shards, slots
from shared.tenancy.tenants import get_tenant, require_active

CAS_BUDGET_S = 4.0
"""How long one admission may keep retrying lost compare-and-sets before answering 503."""
ORPHAN_AFTER_S = 300.0
"""A held slot whose run document still does not exist after this long was left by a crash: reclaim it."""
CONCURRENCY_RETRY_AFTER_S = 5


class QuotaExceeded(TooManyRequests):
    pass


@dataclass(frozen=True)
class Reservation:
    """What one admission took: give it all back if the run is not created."""

    quota: quota_shards.QuotaClaim
    slot: int


def admit_run(
    ctx: Context,
    tenant_id: str,
    pipeline_id: str,
    parameters: dict[str, Any],
    trigger: Trigger,
    idempotency_key: str | None = None,
    extra_fields: dict[str, Any] | None = None,
    compiled: CompiledPipeline | None = None,
) -> tuple[CreatedRun, PipelineSpec]:
    """Check, reserve and record a QUEUED run (once per idempotency key). Raises ClientError (404/403/429/503).

    `extra_fields` are stored on a newly created run document (e.g. `resume_from_run` for a re-run). `compiled`: the
    pipeline as the caller compiled it a moment before (a schedule tick reads its schedule from it), not looked up
    again.
    """
    pipeline = compiled or load_admitted_pipeline(ctx, tenant_id, pipeline_id)
    spec = pipeline.spec
    tenant = get_tenant(ctx, tenant_id)
    plan = effective_plan(tenant)
    check_pipeline_bounds(pipeline, parameters, plan)  # 400/413 naming the field
    parameters = validate_run_parameters(spec, parameters)  # 400 naming parameters.<name>; canonical + defaults
    require_active(tenant)
    if idempotency_key:
        existing = _run_for_key(ctx.state, tenant_id, idempotency_key)
        if existing is not None:
            return CreatedRun(str(existing["run_id"]), False, existing), spec
    run_id = new_run_id()
    now = utc_now()
    reservation = _reserve(ctx.state, tenant_id, plan, run_id, now)
    try:
        created = create_run(
            ctx.state,
            tenant_id,
            pipeline_id,
            parameters,
            trigger,
            idempotency_key,
            run_id=run_id,
            retention_days=ctx.settings.run_retention_days,
        )
        if created.created and extra_fields:
            set_fields_if(
                ctx.state, run_path(created.run_id), extra_fields, lambda d: d.get("status") == RunStatus.QUEUED
            )
            created = CreatedRun(created.run_id, True, {**created.doc, **extra_fields})
    except BaseException:
        _give_back(ctx.state, tenant_id, run_id, reservation, now)
        raise
    if not created.created:
        _give_back(ctx.state, tenant_id, run_id, reservation, now)  # the key named a run made meanwhile: no charge
    elif created.run_id != run_id:  # the key's crashed first attempt was repaired under its own run id
        slots.rename(ctx.state, tenant_id, reservation.slot, run_id, created.run_id)
    return created, spec


def load_admitted_pipeline(ctx: Context, tenant_id: str, pipeline_id: str) -> CompiledPipeline:
    """The pipeline as admission sees it (compiled once per file version); a broken YAML is the tenant's 400."""
    try:
        return compiled_pipeline(ctx.settings.config_dir, tenant_id, pipeline_id)
    except PipelineValidationError as exc:  # the tenant's YAML is broken: their fix, never a 500
        raise BadRequest(
            f"pipeline {pipeline_id!r} is invalid; fix its YAML (`cloudact pipelines validate`)",
            {"field": "pipeline_id", "issues": [str(issue) for issue in exc.issues][:50]},
        ) from exc


def check_pipeline_bounds(pipeline: CompiledPipeline, parameters: dict[str, Any], plan: Plan) -> None:
    """The plan of record's pipeline caps (the loader checked those of the plan tenant.yaml names): the parameters
    given (count, size of each value) and the pipeline itself, so a tenant.yaml edited to name a bigger plan buys
    nothing."""
    check_run_parameters(parameters, plan)
    problem = spec_problem(pipeline.spec, pipeline.size, plan)
    if problem:
        raise BadRequest(
            f"pipeline {pipeline.spec.pipeline_id!r} is over the tenant's plan: {problem}",
            {"field": "pipeline_id", "plan": plan.name},
        )


def release_run_slot(ctx: Context, run: dict[str, Any]) -> None:
    """Give back the concurrency slot of a terminal run. Idempotent: a second call finds nothing to clear."""
    slots.release(ctx.state, str(run["tenant_id"]), str(run["run_id"]), utc_now())


def active_runs(state: StateStore, tenant_id: str) -> dict[str, str]:
    """The runs holding a slot: run id -> reserved_at."""
    return {str(d["run_id"]): str(d.get("reserved_at", "")) for d in slots.held(state, tenant_id).values()}


def usage(ctx: Context, tenant_id: str, now: datetime | None = None) -> dict[str, Any]:
    """Today's and this month's admitted runs and the runs holding a slot, with the effective plan: two queries, over
    the quota shards (at most 2 x quota_shards.SHARDS documents) and over the held slots."""
    now = now or utc_now()
    tenant = get_tenant(ctx, tenant_id)
    plan = effective_plan(tenant)
    counted = quota_shards.totals(ctx.state, tenant_id, now)
    active = active_runs(ctx.state, tenant_id)
    return {
        "tenant_id": tenant_id,
        "status": tenant.get("status"),
        "plan": plan.as_dict(),
        "day": quota_shards.period_of("day", now),
        "runs_today": counted["day"],
        "month": quota_shards.period_of("month", now),
        "runs_this_month": counted["month"],
        "concurrent_runs": len(active),
        "active_run_ids": sorted(active),
        "remaining": {
            "runs_today": max(0, plan.runs_per_day - counted["day"]),
            "runs_this_month": max(0, plan.runs_per_month - counted["month"]),
            "concurrent_runs": max(0, plan.concurrent_runs - len(active)),
        },
    }


# ---------------------------------------------------------------------------------------------- internals


def _run_for_key(state: StateStore, tenant_id: str, key: str) -> Doc | None:
    pointer = state.get(idempotency_path(tenant_id, key))
    return state.get(run_path(str(pointer["run_id"]))) if pointer else None


def _seconds_to_next_day(now: datetime) -> int:
    tomorrow = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    return max(1, int((tomorrow - now).total_seconds()) + 1)


def _seconds_to_next_month(now: datetime) -> int:
    first = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    return max(1, int((first - now).total_seconds()) + 1)


def _refusal(exc: quota_shards.Exhausted | slots.SlotsFull, plan: Plan, now: datetime) -> QuotaExceeded:
    if isinstance(exc, slots.SlotsFull):
        return QuotaExceeded(
            f"concurrent run limit reached ({plan.concurrent_runs} runs queued or running)",
            CONCURRENCY_RETRY_AFTER_S,
            {"limit": "concurrent_runs", "value": plan.concurrent_runs, "used": exc.used},
        )
    if exc.kind == "day":
        return QuotaExceeded(
            f"daily run quota reached ({plan.runs_per_day} runs per UTC day)",
            _seconds_to_next_day(now),
            {"limit": "runs_per_day", "value": plan.runs_per_day, "used": exc.used},
        )
    return QuotaExceeded(
        f"monthly run quota reached ({plan.runs_per_month} runs per UTC month)",
        _seconds_to_next_month(now),
        {"limit": "runs_per_month", "value": plan.runs_per_month, "used": exc.used},
    )


def _reclaimer(state: StateStore, now: datetime) -> slots.Reclaimable:
    """Which held slots belong to runs that ended without releasing them, or whose run was never written (a crash).
    Each run is read once per admission, however often the admission retries."""
    verdicts: dict[str, bool] = {}

    def ended(run_id: str, reserved_at: str) -> bool:
        if run_id not in verdicts:
            run = state.get(run_path(run_id))
            if run is None:
                verdicts[run_id] = (now - parse_iso(reserved_at)).total_seconds() > ORPHAN_AFTER_S
            else:
                verdicts[run_id] = is_terminal(str(run.get("status")))
        return verdicts[run_id]

    def reclaimable(held: dict[int, Doc]) -> list[int]:
        return [i for i, doc in held.items() if ended(str(doc["run_id"]), str(doc.get("reserved_at") or iso(now)))]

    return reclaimable


def _backoff(attempt: int, deadline: float) -> None:
    if time.monotonic() > deadline:
        raise ServiceUnavailable("admission is contended right now; retry shortly", 1, {"reason": "contention"})
    time.sleep(random.uniform(0, min(0.05, 0.0005 * 2 ** min(attempt, 7))))


def _reserve(state: StateStore, tenant_id: str, plan: Plan, run_id: str, now: datetime) -> Reservation:
    """Read a day shard, a month shard and a slot with room (429 if one has none), then take them in that order; a
    write lost to another admission gives back what this attempt took, and the loop tries other documents."""
    deadline = time.monotonic() + CAS_BUDGET_S
    reclaimable = _reclaimer(state, now)
    attempt = 0
    while True:
        try:
            quota = quota_shards.pick(state, tenant_id, plan.runs_per_day, plan.runs_per_month, now)
            slot = slots.pick(state, tenant_id, plan.concurrent_runs, reclaimable)
        except (quota_shards.Exhausted, slots.SlotsFull) as exc:
            raise _refusal(exc, plan, now) from None
        reservation = _take(state, tenant_id, run_id, now, quota, slot)
        if reservation is not None:
            return reservation
        attempt += 1
        _backoff(attempt, deadline)


def _take(
    state: StateStore,
    tenant_id: str,
    run_id: str,
    now: datetime,
    quota: quota_shards.QuotaPick | None,
    slot: slots.SlotPick | None,
) -> Reservation | None:
    if quota is None or slot is None:
        return None
    claim = quota_shards.take(state, tenant_id, quota, now)
    if claim is None:
        return None
    if not slots.take(state, tenant_id, slot, run_id, now):
        quota_shards.give_back(state, tenant_id, claim, now)
        return None
    return Reservation(claim, slot.index)


def _give_back(state: StateStore, tenant_id: str, run_id: str, reservation: Reservation, now: datetime) -> None:
    """A reservation that never became a run: its slot and its counts are given back."""
    slots.clear(state, tenant_id, reservation.slot, run_id, now)
    quota_shards.give_back(state, tenant_id, reservation.quota, now)
