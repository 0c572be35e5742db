"""Run quotas (runs per UTC day, runs per UTC month) as sharded counters: exact under races, no hot document.

Layout: `tenants/{t}/quota_shards/{kind}-{i}` for kind in (day, month) and i < SHARDS, each
`{kind, period: "2026-12-06" | "2026-12", used, updated_at}`; a shard whose period is not the current one counts 0
(it rolls over on its next write), so a tenant has at most 2 x SHARDS of these documents, ever.

Why it is exact: a limit Q is split over the shards by a pure function of Q, `cap(Q, i) = Q // SHARDS + (i < Q %
SHARDS)`, whose sum is Q, and a shard's `used` only grows by a compare-and-set that checks it against its own cap. No
interleaving can push one shard past its cap, so the sum of `used` never passes Q. Why sharded: Firestore sustains
about one write per second on one document; a random shard per admission spreads a tenant's admissions over SHARDS
documents (50 admissions/s is < 1 write/s on each).

A limit changed during a period applies shard by shard: raising it is exact at once; lowering it stops new runs on
every shard already at its new share, but runs admitted under the old limit on other shards stay counted, so the
period can end above the new limit by at most the old admissions (it never admits past max(old count, new limit)
plus the unevenness of the old admissions over the shards).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shared.ports.state import StateStore, Versioned
from shared.runs.machine import iso
from shared.tenancy.cache import KnownPaths

Kind = Literal["day", "month"]
KINDS: tuple[Kind, ...] = ("day", "month")
SHARDS = 64
"""Shards per kind. Fixed: the caps of every shard follow from the limit alone, so a plan change needs no migration."""
FAST_PROBES = 3
"""Random shards read before listing them all (a full shard is likely only near the end of the period)."""

known_shards = KnownPaths()
"""Shard documents this process has seen exist: a shard not in it is claimed with create() without reading it."""


class Exhausted(Exception):
    """No shard of `kind` has room: the limit is reached. `used` is the period's total."""

    def __init__(self, kind: Kind, used: int) -> None:
        super().__init__(f"{kind} quota reached ({used} used)")
        self.kind = kind
        self.used = used


@dataclass(frozen=True)
class ShardPick:
    """A shard with room as read: `take` turns it into a claim if nobody wrote it since."""

    kind: Kind
    index: int
    period: str
    used: int
    version: str | None
    """None when the document does not exist yet (the claim is then a create())."""


@dataclass(frozen=True)
class ShardClaim:
    kind: Kind
    index: int
    period: str


def collection(tenant_id: str) -> str:
    return f"tenants/{tenant_id}/quota_shards"


def shard_path(tenant_id: str, kind: Kind, index: int) -> str:
    return f"{collection(tenant_id)}/{kind}-{index}"


def period_of(kind: Kind, now: datetime) -> str:
    return now.date().isoformat() if kind == "day" else now.strftime("%Y-%m")


def cap(limit: int, index: int) -> int:
    return limit // SHARDS + (1 if index < limit % SHARDS else 0)


def usable_shards(limit: int) -> int:
    """Shards with a cap above 0: all of them from SHARDS runs up, the first `limit` below."""
    return min(SHARDS, max(0, limit))


def _used(data: dict[str, object] | None, period: str) -> int:
    if not data or data.get("period") != period:
        return 0
    value = data.get("used", 0)
    return int(value) if isinstance(value, int) else 0


def pick(state: StateStore, tenant_id: str, kind: Kind, limit: int, now: datetime) -> ShardPick | None:
    """A shard with room for one more run (read only). Raises Exhausted when every shard is at its cap; None when the
    shards with room all filled up while they were being read (a lost race: the caller tries again)."""
    period = period_of(kind, now)
    usable = usable_shards(limit)
    if usable == 0:
        raise Exhausted(kind, 0)
    for index in random.sample(range(usable), min(FAST_PROBES, usable)):
        path = shard_path(tenant_id, kind, index)
        if path not in known_shards:
            return ShardPick(kind, index, period, 0, None)
        found = _pick_from(kind, index, period, limit, state.get_versioned(path))
        if found is not None:
            return found
    # Probably near the limit: one query over this tenant's shards finds those with room left, if any.
    rows = {doc_id: data for doc_id, data in state.list(collection(tenant_id))}
    for doc_id in rows:
        known_shards.add(f"{collection(tenant_id)}/{doc_id}")
    room = [i for i in range(usable) if _used(rows.get(f"{kind}-{i}"), period) < cap(limit, i)]
    if not room:
        raise Exhausted(kind, sum(_used(rows.get(f"{kind}-{i}"), period) for i in range(SHARDS)))
    for index in random.sample(room, min(FAST_PROBES, len(room))):
        found = _pick_from(kind, index, period, limit, state.get_versioned(shard_path(tenant_id, kind, index)))
        if found is not None:
            return found
    return None


def _pick_from(kind: Kind, index: int, period: str, limit: int, current: Versioned | None) -> ShardPick | None:
    used = _used(current.data if current else None, period)
    if used >= cap(limit, index):
        return None
    return ShardPick(kind, index, period, used, current.version if current else None)


def take(state: StateStore, tenant_id: str, picked: ShardPick, now: datetime) -> ShardClaim | None:
    """Count one run on the picked shard with a compare-and-set; None when another writer got there first."""
    path = shard_path(tenant_id, picked.kind, picked.index)
    doc = {"kind": picked.kind, "period": picked.period, "used": picked.used + 1, "updated_at": iso(now)}
    if picked.version is None:
        won = state.create(path, doc)
        known_shards.add(path)  # made now, or it existed: either way read it from now on
    else:
        won = state.update_if(path, doc, picked.version)
    return ShardClaim(picked.kind, picked.index, picked.period) if won else None


def give_back(state: StateStore, tenant_id: str, claim: ShardClaim, now: datetime, attempts: int = 50) -> bool:
    """Uncount a claimed run (its reservation did not become a run). A no-op once the shard's period has passed.
    False only when the shard stayed contended for every attempt (the run then stays counted: never under-counted)."""
    path = shard_path(tenant_id, claim.kind, claim.index)
    for _ in range(attempts):
        current = state.get_versioned(path)
        used = _used(current.data if current else None, claim.period)
        if current is None or used <= 0:
            return True
        if state.update_if(path, {"used": used - 1, "updated_at": iso(now)}, current.version):
            return True
    return False


def totals(state: StateStore, tenant_id: str, now: datetime) -> dict[Kind, int]:
    """Runs counted in the current day and month: one query over at most 2 x SHARDS documents."""
    out: dict[Kind, int] = {"day": 0, "month": 0}
    periods: dict[Kind, str] = {"day": period_of("day", now), "month": period_of("month", now)}
    for doc_id, data in state.list(collection(tenant_id)):
        for kind in KINDS:
            if doc_id.startswith(f"{kind}-"):
                out[kind] += _used(data, periods[kind])
    return out
