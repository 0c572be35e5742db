"""Per-instance caches: a thread-safe TTL + LRU cache for copies of state documents (API keys, tenants), the
compiled pipelines admission and schedule ticks use, and a set of document paths known to exist.

Why a TTL and not invalidation messages: a function instance has no channel to hear about another instance's writes.
The TTL is the documented bound on staleness (e.g. a revoked key keeps working for at most that long on instances
that had validated it); the instance that made the change drops its own entry at once.

Compiled pipelines need no TTL: an entry is stamped with what its validation depended on (the file's mtime, size and
inode, its tenant.yaml's, which names the plan, and the config folder's, whose tenant folders the SQL scope refuses)
and is used only while three stat() calls still give that stamp.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from shared.clock import utc_now

if TYPE_CHECKING:
    from shared.pipelines.spec import PipelineSpec

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


@dataclass(frozen=True)
class CompiledPipeline:
    spec: PipelineSpec
    size: int
    """Bytes of the YAML file (the plan caps its size)."""


Stamp = tuple[int, ...]
COMPILED_PIPELINES_MAX = 50_000
"""Enough for every scheduled pipeline of 10,000+ tenants on one instance (~10 KB each for a small pipeline)."""
_compiled: OrderedDict[tuple[str, str, str], tuple[Stamp, CompiledPipeline]] = OrderedDict()
_compiled_lock = threading.Lock()


def _stamp_of(path: Path) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return (-1,)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def compiled_pipeline(config_dir: Path, tenant_id: str, pipeline_id: str) -> CompiledPipeline:
    """`find_pipeline`, compiled once per version of the files it depends on (see the module docstring). Raises what
    find_pipeline raises (NotFound, PipelineValidationError); failures are not cached."""
    from shared.catalog.loader import find_pipeline, pipeline_path

    path = pipeline_path(config_dir, tenant_id, pipeline_id)  # ids checked first: the path cannot escape
    stamp = _stamp_of(path) + _stamp_of(config_dir / tenant_id / "tenant.yaml") + _stamp_of(config_dir)
    key = (str(config_dir), tenant_id, pipeline_id)
    with _compiled_lock:
        hit = _compiled.get(key)
        if hit is not None and hit[0] == stamp and stamp[0] != -1:
            _compiled.move_to_end(key)
            return hit[1]
    compiled = CompiledPipeline(find_pipeline(config_dir, tenant_id, pipeline_id), max(0, stamp[1]))
    with _compiled_lock:
        _compiled[key] = (stamp, compiled)
        _compiled.move_to_end(key)
        while len(_compiled) > COMPILED_PIPELINES_MAX:
            _compiled.popitem(last=False)
    return compiled


def forget_compiled_pipelines() -> None:
    with _compiled_lock:
        _compiled.clear()
