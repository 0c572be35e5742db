"""A run's execution plan: its validated spec snapshot, topological order and dependants, cached per process.

Pure functions of the spec; the engine asks them what is ready, what must be skipped and how a run ended.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from shared.contracts.states import FAILURES, RunStatus, StageStatus
from shared.errors import TerminalError
from shared.pipelines.spec import PipelineSpec, StepSpec
from shared.ports.state import StateStore
from shared.runs.store import JOIN_GROUP_SIZE, load_run_spec


@dataclass(frozen=True)
class RunPlan:
    spec: PipelineSpec
    order: tuple[StepSpec, ...]
    """Topological: a step comes after everything it depends on (one pass can cascade skips)."""
    children: dict[str, tuple[str, ...]]
    """step_id -> the steps that depend on it directly: all a finishing stage ever touches (O(1) per transition)."""
    sinks: frozenset[str]
    """Steps nothing depends on: the run can only have ended when one of them just ended."""
    steps: dict[str, StepSpec]
    """step_id -> its spec (a dict: a 1,000-step run looks steps up on every transition)."""
    join_group: dict[str, dict[str, int]]
    """Wide joins only (more than JOIN_GROUP_SIZE dependencies): step_id -> dependency -> its group number."""


_PLANS: OrderedDict[str, RunPlan] = OrderedDict()
_PLANS_LOCK = threading.Lock()
_MAX_PLANS = 512


def build_plan(spec: PipelineSpec) -> RunPlan:
    order = topological_order(spec)
    children = {sid: tuple(kids) for sid, kids in spec.dependants().items()}
    sinks = frozenset(sid for sid, kids in children.items() if not kids)
    groups = {
        s.step_id: {dep: i // JOIN_GROUP_SIZE for i, dep in enumerate(s.depends_on)}
        for s in spec.steps
        if len(s.depends_on) > JOIN_GROUP_SIZE
    }
    return RunPlan(spec, order, children, sinks, {s.step_id: s for s in spec.steps}, groups)


def run_plan(run: dict[str, Any], state: StateStore) -> RunPlan:
    """The plan of a RUNNING run, validated once per process: the snapshot never changes once the run started."""
    run_id = str(run["run_id"])
    with _PLANS_LOCK:
        hit = _PLANS.get(run_id)
        if hit is not None:
            _PLANS.move_to_end(run_id)
            return hit
    plan = build_plan(PipelineSpec.model_validate(load_run_spec(state, run)))
    with _PLANS_LOCK:
        _PLANS[run_id] = plan
        while len(_PLANS) > _MAX_PLANS:
            _PLANS.popitem(last=False)
    return plan


def topological_order(spec: PipelineSpec) -> tuple[StepSpec, ...]:
    """Kahn's algorithm over depends_on."""
    indegree = {s.step_id: len(s.depends_on) for s in spec.steps}
    dependants = spec.dependants()
    by_id = {s.step_id: s for s in spec.steps}
    queue = deque(s.step_id for s in spec.steps if not s.depends_on)
    order: list[StepSpec] = []
    while queue:
        sid = queue.popleft()
        order.append(by_id[sid])
        for child in dependants.get(sid, []):
            indegree[child] -= 1
            if indegree[child] == 0:
                queue.append(child)
    if len(order) != len(spec.steps):  # validation rejects cycles; never loop on a bad snapshot
        raise TerminalError("pipeline has a dependency cycle")
    return tuple(order)


def should_run(trigger: str, dep_statuses: list[str]) -> bool:
    """Whether a step whose dependencies are all terminal runs (else it is SKIPPED)."""
    if trigger == "always":
        return True
    if trigger == "on_failure":
        return any(s in FAILURES for s in dep_statuses)
    return all(s == StageStatus.SUCCEEDED for s in dep_statuses)


def derive_run_status(stages: list[dict[str, Any]]) -> tuple[RunStatus, str | None]:
    """A finished run's status and error from its stages: the first failure wins, SKIPPED alone is success."""
    by_status = {str(s["status"]) for s in stages}
    for status in (RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELLED):
        if status in by_status:
            first = next(s for s in stages if s["status"] == status)
            return status, f"stage {first['stage_id']}: {first.get('error') or status.lower()}"
    return RunStatus.SUCCEEDED, None
