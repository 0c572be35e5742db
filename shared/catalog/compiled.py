"""The compiled pipelines admission and schedule ticks use, cached per function instance.

Compiled pipelines need no TTL: an entry is stamped with what its validation depended on (the file's mtime, size and
inode, its tenant.yaml's, which names the plan, and the config folder's, whose tenant folders the SQL scope refuses)
and is used only while three stat() calls still give that stamp.
"""

from __future__ import annotations

import os
import stat
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from shared.catalog.loader import find_pipeline, load_pipeline, pipeline_path
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


def _stamp_of(path: str) -> Stamp:
    """(mtime, size, inode, is a regular file) or (-1,) when there is no such file."""
    try:
        st = os.stat(path)
    except OSError:
        return (-1,)
    return (st.st_mtime_ns, st.st_size, st.st_ino, stat.S_ISREG(st.st_mode))


def compiled_pipeline(config_dir: Path, tenant_id: str, pipeline_id: str) -> CompiledPipeline:
    """`find_pipeline`, compiled once per version of the files it depends on (see the module docstring). Raises what
    find_pipeline raises (NotFound, PipelineValidationError); failures are not cached."""
    folder = os.fspath(config_dir)
    key = (folder, tenant_id, pipeline_id)
    with _compiled_lock:
        hit = _compiled.get(key)
    # ids checked before a path is made of them, so it cannot escape (those of a cached entry were, when it was made)
    path = pipeline_path(config_dir, tenant_id, pipeline_id) if hit is None else None
    # plain strings, not pathlib: a warm tick or execute spends most of its time here (bench P6)
    file = _stamp_of(f"{folder}/{tenant_id}/pipelines/{pipeline_id}.yaml")
    plan_file = _stamp_of(f"{folder}/{tenant_id}/tenant.yaml")
    stamp = file + plan_file + _stamp_of(folder)
    if hit is not None and hit[0] == stamp and file[0] != -1:
        with _compiled_lock:
            if key in _compiled:
                _compiled.move_to_end(key)
        return hit[1]
    if file[0] == -1 or not file[3]:  # find_pipeline says why: no such tenant, no such pipeline
        spec = find_pipeline(config_dir, tenant_id, pipeline_id)
    else:  # what find_pipeline would stat() again is in the stamps
        known_plan_file = None if plan_file[0] == -1 else plan_file[0]
        path = path or pipeline_path(config_dir, tenant_id, pipeline_id)
        spec = load_pipeline(path, mtime_ns=file[0], tenant_yaml_mtime_ns=known_plan_file)
    compiled = CompiledPipeline(spec, file[1] if len(file) > 1 else 0)
    with _compiled_lock:
        _compiled[key] = (stamp, compiled)
        _compiled.move_to_end(key)
        while len(_compiled) > COMPILED_PIPELINES_MAX:
            _compiled.popitem(last=False)
    return compiled


def forget_compiled_pipelines() -> None:
    with _compiled_lock:
        _compiled.clear()
