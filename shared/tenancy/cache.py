"""Per-instance caches: a thread-safe TTL + LRU cache for copies of state documents (API keys, tenants) and a set of
document paths known to exist (compiled pipelines are cached in shared/catalog/compiled.py).

Why a TTL and not invalidation messages: a function instance has no channel to hear about another instance's writes.
The TTL is the documented bound on staleness (e.g. a revoked key keeps working for at most that long on instances
that had validated it); the instance that made the change drops its own entry at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

from shared.clock import utc_now

V = TypeVar("V")


class TtlCache(Generic[V]):
    def __init__(self, ttl_s: float, max_entries: int) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._items: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> V | None:
        now = utc_now().timestamp()  # the process clock, so a test can let the TTL pass without sleeping
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            if not 0 <= now - hit[0] <= self.ttl_s:  # also drop an entry the clock was stepped back past
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return hit[1]

    def put(self, key: str, value: V) -> None:
        with self._lock:
            self._items[key] = (utc_now().timestamp(), value)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def drop(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class KnownPaths:
    """Document paths this process has seen exist: a hint that saves a read before a create() that would fail.

    Only ever a hint: a path missing here is claimed with create(), which fails harmlessly (and is then added) when
    another process made the document. Bounded by forgetting everything past `max_entries`.
    """

    def __init__(self, max_entries: int = 200_000) -> None:
        self.max_entries = max_entries
        self._paths: set[str] = set()
        self._lock = threading.Lock()

    def __contains__(self, path: object) -> bool:
        return path in self._paths

    def add(self, path: str) -> None:
        with self._lock:
            if len(self._paths) >= self.max_entries:
                self._paths.clear()
            self._paths.add(path)
