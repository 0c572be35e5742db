"""Concurrent-run slots: `tenants/{t}/slots/{i}` for i < the tenant's concurrent-run limit, each
`{run_id, reserved_at}` while a run holds it and `{run_id: null, released_at}` once given back.

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
"""Per tenant, how many slots were held when this process last listed them (widens the fast path's range)."""
_freed: dict[str, collections.deque[int]] = collections.defaultdict(lambda: collections.deque(maxlen=64))
"""Per tenant, slots this process cleared lately: tried first (likely still free), saving the probes of held ones."""


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


def collection(tenant_id: str) -> str:
    return f"tenants/{tenant_id}/slots"


def slot_path(tenant_id: str, index: int) -> str:
    return f"{collection(tenant_id)}/{index}"


def held(state: StateStore, tenant_id: str) -> dict[int, Doc]:
    """Every held slot (index -> document): one query over the tenant's slots."""
    rows = state.list(collection(tenant_id), [Filter("run_id", "!=", None)])
    return {int(doc_id): data for doc_id, data in rows if doc_id.isdigit()}


def _probe(state: StateStore, tenant_id: str, index: int) -> SlotPick | None:
    path = slot_path(tenant_id, index)
    if path not in known_slots:
        return SlotPick(index, None)
    current = state.get_versioned(path)
    if current is None:
        return SlotPick(index, None)
    return None if current.data.get("run_id") else SlotPick(index, current.version)


def pick(state: StateStore, tenant_id: str, limit: int, reclaimable: Reclaimable) -> SlotPick | None:
    """A slot to claim. Raises SlotsFull when `limit` live runs hold slots; None when the free slots found were all
    taken while being read (a lost race: the caller tries again)."""
    if limit <= 0:
        raise SlotsFull(0)
    spread = min(limit, max(SPREAD, 2 * (_held_hint.get(tenant_id) or 0)))
    recent = _freed.get(tenant_id)
    index = _pop(recent) if recent else None
    if index is not None and index < limit:
        found = _probe(state, tenant_id, index)
        if found is not None:
            return found
    for index in random.sample(range(spread), min(FAST_PROBES, spread)):
        found = _probe(state, tenant_id, index)
        if found is not None:
            return found
    occupied = held(state, tenant_id)
    _held_hint.put(tenant_id, len(occupied))
    if len(occupied) >= limit:
        for index in reclaimable(occupied):
            current = state.get_versioned(slot_path(tenant_id, index))
            holder = occupied[index].get("run_id")
            if current is not None and current.data.get("run_id") == holder:
                return SlotPick(index, current.version, str(holder))
        raise SlotsFull(len(occupied))
    free = _free_indexes(occupied, limit, max(SPREAD, len(occupied)))
    for index in random.sample(free, min(FAST_PROBES, len(free))):
        found = _probe(state, tenant_id, index)
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


def take(state: StateStore, tenant_id: str, picked: SlotPick, run_id: str, now: datetime) -> bool:
    path = slot_path(tenant_id, picked.index)
    doc: Doc = {"run_id": run_id, "reserved_at": iso(now)}
    if picked.version is None:
        if state.create(path, doc):
            known_slots.add(path)
            return True
        known_slots.add(path)  # it exists: read it next time
        return False
    return state.update_if(path, doc, picked.version)


def _set_holder(state: StateStore, tenant_id: str, index: int, expected: str, fields: Doc) -> None:
    """Write `fields` on slot `index` only while `expected` holds it (compare-and-set, retried on lost races)."""
    path = slot_path(tenant_id, index)
    for _ in range(RELEASE_ATTEMPTS):
        current = state.get_versioned(path)
        if current is None or current.data.get("run_id") != expected:
            return
        if state.update_if(path, fields, current.version):
            return
    raise TransientError(f"{path}: too much contention on a run slot", retry_after_seconds=1.0)


def clear(state: StateStore, tenant_id: str, index: int, run_id: str, now: datetime) -> None:
    _set_holder(state, tenant_id, index, run_id, {"run_id": None, "released_at": iso(now)})
    _freed[tenant_id].append(index)


def _pop(recent: collections.deque[int]) -> int | None:
    try:
        return recent.pop()
    except IndexError:  # another thread took the last one
        return None


def rename(state: StateStore, tenant_id: str, index: int, old: str, new: str) -> None:
    _set_holder(state, tenant_id, index, old, {"run_id": new})


def release(state: StateStore, tenant_id: str, run_id: str, now: datetime) -> int:
    """Clear every slot `run_id` holds (normally one); how many were found. Idempotent."""
    rows = state.list(collection(tenant_id), [Filter("run_id", "==", run_id)])
    for doc_id, _ in rows:
        clear(state, tenant_id, int(doc_id), run_id, now)
    return len(rows)
