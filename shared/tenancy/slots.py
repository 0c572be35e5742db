"""Slots: `tenants/{t}/slots/{i}` for i < the tenant's concurrent-run limit, each `{run_id, reserved_at}` while a run
holds it and `{run_id: null, released_at}` once given back; the same for the stages a tenant may run at once
(`tenants/{t}/stage_slots/{i}`, held by `{run_id}/{stage_id}` in `holder`: shared/runs/stage_slots.py).

Why slots: a run may start only by writing its id into a free slot with create() (no document yet) or a
compare-and-set (a freed document), so at most `limit` runs hold one - exact under any race - and no document takes
more than its own slot's traffic (a random slot per admission). Releasing finds the run's slot with one equality
query and clears it with a compare-and-set that checks the holder, so a second release, or one that comes after the
slot was reclaimed and reused, changes nothing.

A limit lowered while runs hold slots at or above the new limit: those runs keep their slots and count in the slow
path below, but the fast path only looks at slots below the limit, so until they end the tenant may briefly hold
up to the old limit.
"""

from __future__ import annotations

import collections
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from shared.clock import iso
from shared.errors import TransientError
from shared.ports.state import Doc, Filter, StateStore
from shared.tenancy.cache import KnownPaths, TtlCache

SPREAD = 512
"""Fast-path slots are drawn from the first max(SPREAD, 2 x the runs last seen holding one) indexes: a tenant with a
huge limit reuses a bounded set of documents instead of creating one per run, at most half of them held, and SPREAD
slots keep each under ~1 write/s at 100 admissions/s."""
FAST_PROBES = 8
"""Slots read (one get each) before listing the held ones: a list costs a read per held slot."""
RELEASE_ATTEMPTS = 50

known_slots = KnownPaths()
"""Slot documents this process has seen exist: a slot not in it is claimed with create() without reading it first."""
_held_hint: TtlCache[int] = TtlCache(ttl_s=600.0, max_entries=100_000)
"""Per pool and tenant, how many slots were held when this process last listed them (widens the fast path's range)."""
_freed: dict[str, collections.deque[int]] = collections.defaultdict(lambda: collections.deque(maxlen=64))
"""Per pool and tenant, slots this process cleared lately: tried first (likely free), saving probes of held ones."""


@dataclass(frozen=True)
class Pool:
    """One kind of slot: the tenant's subcollection, the field naming the holder, and how many slot documents the
    fast path spreads over (see SPREAD)."""

    name: str
    holder_field: str
    spread: int = SPREAD


RUN_SLOTS = Pool("slots", "run_id")
STAGE_SLOTS = Pool("stage_slots", "holder", spread=32)
"""Stages come and go far more often than runs, and each dispatch and end asks which slot a stage holds (an equality
query over the tenant's stage slots): few documents keep that query small; 2 x the slots last seen held widens it."""


class SlotsFull(Exception):
    """Every slot is held by a live run. `used` is how many are held."""

    def __init__(self, used: int) -> None:
        super().__init__(f"{used} slots held")
        self.used = used


@dataclass(frozen=True)
class SlotPick:
    index: int
    version: str | None
    """None: claim it with create() (no document known); else the compare-and-set's version."""
    holder: str | None = None
    """The ended run whose slot is being reclaimed, None for a free slot."""


Reclaimable = Callable[[dict[int, Doc]], list[int]]
"""Given the held slots (index -> slot document), the indexes whose holder has ended or never started."""


def collection(tenant_id: str, pool: Pool = RUN_SLOTS) -> str:
    return f"tenants/{tenant_id}/{pool.name}"


def slot_path(tenant_id: str, index: int, pool: Pool = RUN_SLOTS) -> str:
    return f"{collection(tenant_id, pool)}/{index}"


def held(state: StateStore, tenant_id: str, pool: Pool = RUN_SLOTS) -> dict[int, Doc]:
    """Every held slot (index -> document): one query over the tenant's slots."""
    rows = state.list(collection(tenant_id, pool), [Filter(pool.holder_field, "!=", None)])
    return {int(doc_id): data for doc_id, data in rows if doc_id.isdigit()}


def _probe(state: StateStore, tenant_id: str, index: int, pool: Pool) -> SlotPick | None:
    path = slot_path(tenant_id, index, pool)
    if path not in known_slots:
        return SlotPick(index, None)
    current = state.get_versioned(path)
    if current is None:
        return SlotPick(index, None)
    return None if current.data.get(pool.holder_field) else SlotPick(index, current.version)


def pick(
    state: StateStore, tenant_id: str, limit: int, reclaimable: Reclaimable, pool: Pool = RUN_SLOTS
) -> SlotPick | None:
    """A slot to claim. Raises SlotsFull when `limit` live holders hold slots; None when the free slots found were all
    taken while being read (a lost race: the caller tries again)."""
    if limit <= 0:
        raise SlotsFull(0)
    key = f"{pool.name}/{tenant_id}"
    spread = min(limit, max(pool.spread, 2 * (_held_hint.get(key) or 0)))
    recent = _freed.get(key)
    index = _pop(recent) if recent else None
    if index is not None and index < limit:
        found = _probe(state, tenant_id, index, pool)
        if found is not None:
            return found
    for index in random.sample(range(spread), min(FAST_PROBES, spread)):
        found = _probe(state, tenant_id, index, pool)
        if found is not None:
            return found
    occupied = held(state, tenant_id, pool)
    _held_hint.put(key, len(occupied))
    if len(occupied) >= limit:
        for index in reclaimable(occupied):
            current = state.get_versioned(slot_path(tenant_id, index, pool))
            holder = occupied[index].get(pool.holder_field)
            if current is not None and current.data.get(pool.holder_field) == holder:
                return SlotPick(index, current.version, str(holder))
        raise SlotsFull(len(occupied))
    free = _free_indexes(occupied, limit, max(pool.spread, len(occupied)))
    for index in random.sample(free, min(FAST_PROBES, len(free))):
        found = _probe(state, tenant_id, index, pool)
        if found is not None:
            return found
    return None


def _free_indexes(occupied: dict[int, Doc], limit: int, wanted: int) -> list[int]:
    """The lowest `wanted` indexes below `limit` that no run holds (low indexes: documents that already exist)."""
    out: list[int] = []
    index = 0
    while index < limit and len(out) < wanted:
        if index not in occupied:
            out.append(index)
        index += 1
    return out


def take(
    state: StateStore, tenant_id: str, picked: SlotPick, run_id: str, now: datetime, pool: Pool = RUN_SLOTS
) -> bool:
    """Claim the picked slot for holder `run_id` (for stage slots `{run_id}/{stage_id}`); False on a lost race."""
    path = slot_path(tenant_id, picked.index, pool)
    doc: Doc = {pool.holder_field: run_id, "reserved_at": iso(now)}
    if picked.version is None:
        if state.create(path, doc):
            known_slots.add(path)
            return True
        known_slots.add(path)  # it exists: read it next time
        return False
    return state.update_if(path, doc, picked.version)


def _set_holder(state: StateStore, tenant_id: str, index: int, expected: str, fields: Doc, pool: Pool) -> None:
    """Write `fields` on slot `index` only while `expected` holds it (compare-and-set, retried on lost races)."""
    path = slot_path(tenant_id, index, pool)
    for _ in range(RELEASE_ATTEMPTS):
        current = state.get_versioned(path)
        if current is None or current.data.get(pool.holder_field) != expected:
            return
        if state.update_if(path, fields, current.version):
            return
    raise TransientError(f"{path}: too much contention on a slot", retry_after_seconds=1.0)


def clear(state: StateStore, tenant_id: str, index: int, run_id: str, now: datetime, pool: Pool = RUN_SLOTS) -> None:
    _set_holder(state, tenant_id, index, run_id, {pool.holder_field: None, "released_at": iso(now)}, pool)
    _freed[f"{pool.name}/{tenant_id}"].append(index)


def _pop(recent: collections.deque[int]) -> int | None:
    try:
        return recent.pop()
    except IndexError:  # another thread took the last one
        return None


def rename(state: StateStore, tenant_id: str, index: int, old: str, new: str) -> None:
    _set_holder(state, tenant_id, index, old, {"run_id": new}, RUN_SLOTS)


def release(state: StateStore, tenant_id: str, run_id: str, now: datetime, pool: Pool = RUN_SLOTS) -> int:
    """Clear every slot `run_id` holds (normally one); how many were found. Idempotent."""
    rows = state.list(collection(tenant_id, pool), [Filter(pool.holder_field, "==", run_id)])
    for doc_id, _ in rows:
        clear(state, tenant_id, int(doc_id), run_id, now, pool)
    return len(rows)
