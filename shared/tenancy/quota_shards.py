"""Run quotas (runs per UTC day, runs per UTC month) as sharded counters: exact under races, no hot document.

Layout: `tenants/{t}/quota_shards/{i}` for i < SHARDS, each `{day, day_used, month, month_used, updated_at}`
(`day` = "2026-12-06", `month` = "2026-12"); a counter whose period is not the current one counts 0 and starts again
on its next write, so a tenant has at most SHARDS of these documents, ever.

Why it is exact: each limit Q is split over the shards by a pure function of Q, `cap(Q, i) = Q // SHARDS + (i < Q %
SHARDS)`, whose sum is Q, and a shard's counter only grows by a compare-and-set that checks it against that shard's
cap. No interleaving can push one shard past its cap, so no total passes its limit. Why sharded: Firestore sustains
about one write per second on one document; a random shard per admission spreads a tenant's admissions over SHARDS
documents (100 admissions/s is ~0.4 writes/s on each on average, under 1 on the busiest).

Both counters of a run normally go to one shard in one compare-and-set. When no shard has room for both (month usage
is spread unevenly over the shards by earlier days), the day is counted on one shard and the month on another, so a
run is never refused while its day and its month both have room somewhere.

A limit changed during a period applies shard by shard: raising it is exact at once; lowering it stops new runs on
every shard already at its new share, but runs admitted before on other shards stay counted, so the period can end
above the new limit by the old admissions' unevenness over the shards.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shared.clock import iso
from shared.ports.state import Doc, StateStore, Versioned
from shared.tenancy.cache import KnownPaths

Kind = Literal["day", "month"]
KINDS: tuple[Kind, ...] = ("day", "month")
SHARDS = 256
"""Fixed: every shard's cap follows from the limit alone, so a plan change needs no migration."""
FAST_PROBES = 3
"""Random shards tried before listing them all (a full shard is likely only near the end of a period)."""

known_shards = KnownPaths()
"""Shard documents this process has seen exist: a shard not in it is claimed with create() without reading it."""


class Exhausted(Exception):
    """No shard has room for one more run of `kind`: the limit is reached. `used` is the period's total."""

    def __init__(self, kind: Kind, used: int) -> None:
        super().__init__(f"{kind} quota reached ({used} used)")
        self.kind = kind
        self.used = used


@dataclass(frozen=True)
class ShardRead:
    """One shard as read (or as assumed absent): what a compare-and-set on it needs."""

    index: int
    data: Doc
    version: str | None
    """None: the document is not known to exist, so the write is a create()."""


@dataclass(frozen=True)
class QuotaPick:
    """Where one run's day and month are counted (usually the same shard)."""

    day: ShardRead
    month: ShardRead


@dataclass(frozen=True)
class QuotaClaim:
    day_index: int
    day: str
    month_index: int
    month: str


def collection(tenant_id: str) -> str:
    return f"tenants/{tenant_id}/quota_shards"


def shard_path(tenant_id: str, index: int) -> str:
    return f"{collection(tenant_id)}/{index}"


def period_of(kind: Kind, now: datetime) -> str:
    return now.date().isoformat() if kind == "day" else f"{now.year:04d}-{now.month:02d}"  # strftime: ~5x the cost


def cap(limit: int, index: int) -> int:
    return limit // SHARDS + (1 if index < limit % SHARDS else 0)


def usable_shards(limit: int) -> int:
    """Shards with a cap above 0: all of them from SHARDS runs up, the first `limit` below."""
    return min(SHARDS, max(0, limit))


def used(data: Doc | None, kind: Kind, period: str) -> int:
    if not data or data.get(kind) != period:
        return 0
    value = data.get(f"{kind}_used", 0)
    return value if isinstance(value, int) else 0


def _room(data: Doc | None, kind: Kind, period: str, limit: int, index: int) -> bool:
    return index < usable_shards(limit) and used(data, kind, period) < cap(limit, index)


def _read(state: StateStore, tenant_id: str, index: int) -> ShardRead:
    current: Versioned | None = state.get_versioned(shard_path(tenant_id, index))
    return ShardRead(index, current.data, current.version) if current else ShardRead(index, {}, None)


def pick(state: StateStore, tenant_id: str, day_limit: int, month_limit: int, now: datetime) -> QuotaPick | None:
    """Shards with room for one more run (read only). Raises Exhausted when the day's or the month's shards are all
    at their caps; None when the ones with room filled up while being read (a lost race: the caller tries again)."""
    day, month = period_of("day", now), period_of("month", now)
    both = min(usable_shards(day_limit), usable_shards(month_limit))
    for index in random.sample(range(both), min(FAST_PROBES, both)):
        if shard_path(tenant_id, index) not in known_shards:
            return QuotaPick(ShardRead(index, {}, None), ShardRead(index, {}, None))
        read = _read(state, tenant_id, index)
        if _room(read.data, "day", day, day_limit, index) and _room(read.data, "month", month, month_limit, index):
            return QuotaPick(read, read)
    # Near a limit, or the month is unevenly spread: one query over the tenant's shards finds where room is left.
    rows: dict[int, Doc] = {}
    for doc_id, data in state.list(collection(tenant_id)):
        if doc_id.isdigit():
            rows[int(doc_id)] = data
            known_shards.add(shard_path(tenant_id, int(doc_id)))
    day_room = [i for i in range(SHARDS) if _room(rows.get(i), "day", day, day_limit, i)]
    if not day_room:
        raise Exhausted("day", sum(used(d, "day", day) for d in rows.values()))
    month_room = [i for i in range(SHARDS) if _room(rows.get(i), "month", month, month_limit, i)]
    if not month_room:
        raise Exhausted("month", sum(used(d, "month", month) for d in rows.values()))
    shared_room = sorted(set(day_room) & set(month_room))
    if shared_room:
        read = _read(state, tenant_id, random.choice(shared_room))
        fits = _room(read.data, "day", day, day_limit, read.index)
        return QuotaPick(read, read) if fits and _room(read.data, "month", month, month_limit, read.index) else None
    day_read = _read(state, tenant_id, random.choice(day_room))
    month_read = _read(state, tenant_id, random.choice(month_room))
    if _room(day_read.data, "day", day, day_limit, day_read.index) and _room(
        month_read.data, "month", month, month_limit, month_read.index
    ):
        return QuotaPick(day_read, month_read)
    return None


def _counted(read: ShardRead, kinds: tuple[Kind, ...], periods: dict[Kind, str], delta: int, now: datetime) -> Doc:
    fields: Doc = {"updated_at": iso(now)}
    for kind in kinds:
        fields[kind] = periods[kind]
        fields[f"{kind}_used"] = max(0, used(read.data, kind, periods[kind]) + delta)
    return fields


def _write(state: StateStore, tenant_id: str, read: ShardRead, fields: Doc) -> bool:
    path = shard_path(tenant_id, read.index)
    if read.version is None:
        won = state.create(path, fields)
        known_shards.add(path)  # made now, or it existed: either way read it from now on
        return won
    return state.update_if(path, fields, read.version)


def take(state: StateStore, tenant_id: str, picked: QuotaPick, now: datetime) -> QuotaClaim | None:
    """Count one run with compare-and-sets on the picked shard(s); None (and nothing counted) when another writer
    changed one first."""
    periods: dict[Kind, str] = {"day": period_of("day", now), "month": period_of("month", now)}
    claim = QuotaClaim(picked.day.index, periods["day"], picked.month.index, periods["month"])
    if picked.day.index == picked.month.index:
        won = _write(state, tenant_id, picked.day, _counted(picked.day, KINDS, periods, 1, now))
        return claim if won else None
    if not _write(state, tenant_id, picked.day, _counted(picked.day, ("day",), periods, 1, now)):
        return None
    if not _write(state, tenant_id, picked.month, _counted(picked.month, ("month",), periods, 1, now)):
        _uncount(state, tenant_id, picked.day.index, {"day": periods["day"]}, now)
        return None
    return claim


def give_back(state: StateStore, tenant_id: str, claim: QuotaClaim, now: datetime) -> None:
    """Uncount a claimed run (its reservation did not become a run); a counter whose period has passed is left."""
    if claim.day_index == claim.month_index:
        _uncount(state, tenant_id, claim.day_index, {"day": claim.day, "month": claim.month}, now)
    else:
        _uncount(state, tenant_id, claim.day_index, {"day": claim.day}, now)
        _uncount(state, tenant_id, claim.month_index, {"month": claim.month}, now)


def _uncount(state: StateStore, tenant_id: str, index: int, periods: dict[Kind, str], now: datetime) -> bool:
    """False only when the shard stayed contended for every attempt (the run then stays counted: never
    under-counted)."""
    for _ in range(50):
        read = _read(state, tenant_id, index)
        kinds = tuple(k for k in KINDS if k in periods and used(read.data, k, periods[k]) > 0)
        if read.version is None or not kinds:
            return True
        if state.update_if(shard_path(tenant_id, index), _counted(read, kinds, periods, -1, now), read.version):
            return True
    return False


def totals(state: StateStore, tenant_id: str, now: datetime) -> dict[Kind, int]:
    """Runs counted in the current day and month: one query over at most SHARDS documents."""
    periods: dict[Kind, str] = {"day": period_of("day", now), "month": period_of("month", now)}
    rows = [data for _, data in state.list(collection(tenant_id))]
    return {kind: sum(used(data, kind, periods[kind]) for data in rows) for kind in KINDS}
