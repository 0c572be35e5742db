"""The compiled pipelines admission and schedule ticks use, cached per function instance.

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

from shared.catalog.loader import find_pipeline, pipeline_path
from shared.pipelines.spec import PipelineSpec


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
