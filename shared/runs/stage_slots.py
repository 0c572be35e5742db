"""Fair share of the stage workers: a tenant executes at most its plan's `concurrent_stages` stages at once.

Why: the stage worker has a fixed number of instances (Terraform `max_instances` x concurrency 1). Without a cap, one
tenant's fan-out of 1,000 fills them all; every other tenant's stages queue behind it, are refused with 429, retried
and may be dead-lettered. With it, a tenant's stage beyond its cap is not published at all: it is parked in
`parked_stages/{run}:{stage}` and published when one of the tenant's stages ends (oldest first), so the queue never
holds more than `concurrent_stages` tasks of one tenant and other tenants' stages find instances.

A stage holds its slot (shared/tenancy/slots.py, pool `stage_slots`, holder `{run_id}/{stage_id}`) from dispatch to
its end, across retries, re-dispatches and job re-checks. The slot is given back when the stage's end is recorded in
its dependants (dag.advance), the step every ended stage passes through, or when a delivery finds its run ended.
Each transition does O(1) work: per dispatched stage one slot taken or one parked document; per ended stage one slot
freed and the oldest parked stage woken into it.

Lost wake-ups: a dispatcher parks, then looks for a slot once more; a stage that ends frees its slot, then looks for a
parked stage. Whichever runs second sees the other's write (Firestore reads and queries are strongly consistent). A
slot leaked by a crash is reclaimed once its holder has ended (checked only for slots held longer than STALE_SLOT_S),
and the watchdog wakes parked stages that waited longer than PARKED_SWEEP_AFTER_S.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from shared import logs
from shared.clock import iso, parse_iso, utc_now
from shared.contracts.state_paths import stage_path
from shared.contracts.states import is_terminal
from shared.errors import NotFound
from shared.plans import effective_plan
from shared.ports.state import EXPIRE_AT, Doc, Filter, expires_in
from shared.runs.events import publish_stage_tasks
from shared.runtime.context import Context
from shared.tenancy import slots
from shared.tenancy.slots import STAGE_SLOTS
from shared.tenancy.tenants import get_tenant_cached

log = logs.get_logger(__name__)
PARKED = "parked_stages"
STALE_SLOT_S = 600.0
"""Slots held longer than this are checked against their holder's stage when the tenant is at its cap."""
PARKED_SWEEP_AFTER_S = 60.0
"""The watchdog wakes stages parked longer than this (a wake-up lost to a crash between freeing and waking)."""
PARKED_RETENTION_DAYS = 8.0
_TAKE_ATTEMPTS = 8


def holder(run_id: str, stage_id: str) -> str:
    return f"{run_id}/{stage_id}"


def parked_path(run_id: str, stage_id: str) -> str:
    return f"{PARKED}/{run_id}:{stage_id}"


def stage_limit(ctx: Context, tenant_id: str) -> int:
    try:
        tenant = get_tenant_cached(ctx, tenant_id)
    except NotFound:  # a run outliving its tenant's document (removed by hand): the smallest plan's share
        tenant = {}
    return effective_plan(tenant).concurrent_stages


def dispatch(ctx: Context, run: Doc, stage_ids: Sequence[str], *, pump_after: bool = False) -> None:
    """Publish the task of each stage that gets a slot; park the others (in order) and look once more for a slot."""
    if not stage_ids:
        if pump_after:
            pump(ctx, str(run["tenant_id"]))
        return
    tenant_id, run_id = str(run["tenant_id"]), str(run["run_id"])
    limit = stage_limit(ctx, tenant_id)
    now = utc_now()
    go: list[str] = []
    waiting: list[str] = []
    for stage_id in stage_ids:
        # Once one is refused the tenant is at its cap: the rest park without asking (no query per stage).
        if not waiting and _acquire(ctx, tenant_id, holder(run_id, stage_id), limit, now):
            go.append(stage_id)
        else:
            waiting.append(stage_id)
    publish_stage_tasks(ctx.bus, run, go)
    for stage_id in waiting:
        _park(ctx, run, stage_id, now)
    if waiting:
        log.info("%d stage(s) parked: tenant at its %d concurrent stages", len(waiting), limit)
    if waiting or pump_after:
        pump(ctx, tenant_id)


def release(ctx: Context, run: Doc, stage_id: str) -> bool:
    """Free the slot of an ended stage (idempotent); True if it held one. The caller wakes a parked stage."""
    freed = slots.release(
        ctx.state, str(run["tenant_id"]), holder(str(run["run_id"]), stage_id), utc_now(), STAGE_SLOTS
    )
    return freed > 0


def release_and_pump(ctx: Context, run: Doc, stage_id: str) -> None:
    if release(ctx, run, stage_id):
        pump(ctx, str(run["tenant_id"]))


def pump(ctx: Context, tenant_id: str, wakes: int = 1) -> int:
    """Publish up to `wakes` of the tenant's parked stages, oldest first, while it has free slots; how many were woken.

    One by default: an ended stage frees one slot, so asking for a second would only find the tenant at its cap
    (a wasted pick: probes and a list of the held slots)."""
    limit = stage_limit(ctx, tenant_id)
    woken = 0
    while woken < wakes:
        rows = ctx.state.list(PARKED, [Filter("tenant_id", "==", tenant_id)], order_by="parked_at", limit=1)
        if not rows:
            break
        parked = rows[0][1]
        run_id, stage_id = str(parked["run_id"]), str(parked["stage_id"])
        if not _acquire(ctx, tenant_id, holder(run_id, stage_id), limit, utc_now()):
            break
        run = {"run_id": run_id, "tenant_id": tenant_id, "pipeline_id": str(parked["pipeline_id"])}
        publish_stage_tasks(ctx.bus, run, [stage_id])  # published before the parked document goes: never lost
        ctx.state.delete(parked_path(run_id, stage_id))
        woken += 1
    return woken


def is_parked(ctx: Context, run_id: str, stage_id: str) -> bool:
    return ctx.state.get(parked_path(run_id, stage_id)) is not None


def sweep(ctx: Context, now: datetime, scan_limit: int = 500) -> int:
    """Watchdog: wake stages parked longer than PARKED_SWEEP_AFTER_S; how many were woken."""
    cutoff = iso(now - timedelta(seconds=PARKED_SWEEP_AFTER_S))
    rows = ctx.state.list(PARKED, [Filter("parked_at", "<", cutoff)], order_by="parked_at", limit=scan_limit)
    tenants = sorted({str(doc["tenant_id"]) for _, doc in rows})
    return sum(pump(ctx, tenant_id, wakes=stage_limit(ctx, tenant_id)) for tenant_id in tenants)


def _acquire(ctx: Context, tenant_id: str, holder_id: str, limit: int, now: datetime) -> bool:
    state = ctx.state
    held_already = [Filter(STAGE_SLOTS.holder_field, "==", holder_id)]
    if state.list(slots.collection(tenant_id, STAGE_SLOTS), held_already, limit=1):
        return True  # a redelivered dispatch or a second waker: the stage keeps its one slot
    for _ in range(_TAKE_ATTEMPTS):
        try:
            picked = slots.pick(state, tenant_id, limit, _ended_holders(ctx, now), STAGE_SLOTS)
        except slots.SlotsFull:
            return False
        if picked is not None and slots.take(state, tenant_id, picked, holder_id, now, STAGE_SLOTS):
            return True
    return False  # lost every race for a free slot: park; the next freed slot wakes it


def _ended_holders(ctx: Context, now: datetime) -> slots.Reclaimable:
    def reclaimable(occupied: dict[int, Doc]) -> list[int]:
        out: list[int] = []
        for index, doc in occupied.items():
            reserved = doc.get("reserved_at")
            if reserved and (now - parse_iso(str(reserved))).total_seconds() < STALE_SLOT_S:
                continue
            run_id, _, stage_id = str(doc.get(STAGE_SLOTS.holder_field)).partition("/")
            stage = ctx.state.get(stage_path(run_id, stage_id)) if stage_id else None
            if stage is None or is_terminal(str(stage["status"])):
                out.append(index)
        return out

    return reclaimable


def _park(ctx: Context, run: Doc, stage_id: str, now: datetime) -> None:
    doc: Doc = {
        "tenant_id": run["tenant_id"],
        "run_id": run["run_id"],
        "pipeline_id": run["pipeline_id"],
        "stage_id": stage_id,
        "parked_at": iso(now),
        EXPIRE_AT: expires_in(PARKED_RETENTION_DAYS, now),
    }
    ctx.state.create(parked_path(str(run["run_id"]), stage_id), doc)  # a repeat finds it parked already
