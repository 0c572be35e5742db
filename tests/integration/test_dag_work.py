"""State work per stage transition is O(1): a wide join costs linear state calls, not a scan per finishing branch.

Before shared/runs/dag.py every finishing branch of a 200-way join re-read all 200 siblings (40,000 stage reads per
run); now each branch records itself in the join's `parents_done` and never reads a sibling. The bounds below are
counts of state calls, not times, so they are exact on a noisy machine: a linear engine stays far below them and a
quadratic one is far above.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from shared.runs.store import join_groups
from tests.conftest import run_to_end

TENANT = "wideco"


def fan_in_yaml(pipeline_id: str, branches: int, join_trigger: str = "on_success", fail: int | None = None) -> str:
    lines = [f"pipeline_id: {pipeline_id}", "steps:", "  - {step_id: root, ps_type: debug.noop}"]
    for i in range(branches):
        config = ", config: {fail_terminal: true}" if fail == i else ""
        lines.append(f"  - {{step_id: b{i:03d}, ps_type: debug.noop, depends_on: [root]{config}}}")
    parents = ", ".join(f"b{i:03d}" for i in range(branches))
    lines.append(f"  - {{step_id: join, ps_type: debug.noop, trigger: {join_trigger}, depends_on: [{parents}]}}")
    lines.append("  - {step_id: after, ps_type: debug.noop, depends_on: [join]}")
    return "\n".join(lines) + "\n"


class CountingState:
    """Counts state calls by method, and the stage documents that list() returned (a scan shows up there)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            out = attr(*args, **kwargs)
            with self._lock:
                self.calls[name] += 1
                if name == "list" and "/stages" in str(args[0] if args else kwargs.get("collection")):
                    self.calls["stage_docs_listed"] += len(out)
            return out

        return counted


@pytest.fixture
def wide_runtime(config_dir: Path, make_runtime: Any) -> Any:
    tenant = config_dir / TENANT
    (tenant / "pipelines").mkdir(parents=True)
    (tenant / "tenant.yaml").write_text(f"tenant_id: {TENANT}\nname: Wide joins\nplan: enterprise\n")
    for n in (20, 200):
        (tenant / "pipelines" / f"join{n}.yaml").write_text(fan_in_yaml(f"join{n}", n))
    (tenant / "pipelines" / "join_fail.yaml").write_text(fan_in_yaml("join_fail", 30, fail=7))
    (tenant / "pipelines" / "wide_fail.yaml").write_text(fan_in_yaml("wide_fail", 70, fail=40))
    (tenant / "pipelines" / "join_always.yaml").write_text(fan_in_yaml("join_always", 30, "always", fail=7))
    runtime = make_runtime()
    runtime.context._state = CountingState(runtime.context.state)
    return runtime


def _run_counted(runtime: Any, pipeline: str) -> tuple[dict[str, Any], Counter[str]]:
    state: CountingState = runtime.context._state
    with state._lock:
        state.calls = Counter()
    run = run_to_end(runtime, TENANT, pipeline, timeout=120)
    with state._lock:
        return run, Counter(state.calls)


def test_a_wide_join_costs_linear_state_work(wide_runtime: Any) -> None:
    per_stage: dict[int, float] = {}
    for n in (20, 200):
        run, calls = _run_counted(wide_runtime, f"join{n}")
        assert run["status"] == "SUCCEEDED", run.get("error")
        stages = n + 3
        join = next(s for s in run["stages"] if s["stage_id"] == "join")
        # 20 dependencies are recorded one by one; 200 in 7 groups of at most 32 (no write carries more)
        assert len(join["parents_done"]) == join_groups(n) == (20 if n == 20 else 7), join["parents_done"]
        assert set(join["parents_done"].values()) == {"SUCCEEDED"}
        # Run start and run end list the stages (a few times at most); no branch lists them.
        assert calls["stage_docs_listed"] <= 6 * stages, calls
        reads = calls["get"] + calls["get_versioned"]
        per_stage[n] = reads / stages
        assert reads <= 25 * stages, calls  # the quadratic engine read ~n stage documents per branch
    assert per_stage[200] <= 2 * per_stage[20], per_stage


def test_a_failed_branch_skips_the_join_and_what_follows(wide_runtime: Any) -> None:
    run, _ = _run_counted(wide_runtime, "join_fail")
    status = {s["stage_id"]: s["status"] for s in run["stages"]}
    assert status["b007"] == "FAILED" and status["join"] == "SKIPPED" and status["after"] == "SKIPPED"
    assert run["status"] == "FAILED"


def test_a_failed_branch_of_a_wide_join_skips_it_through_its_group(wide_runtime: Any) -> None:
    run, _ = _run_counted(wide_runtime, "wide_fail")
    status = {s["stage_id"]: s for s in run["stages"]}
    assert status["b040"]["status"] == "FAILED" and status["join"]["status"] == "SKIPPED"
    assert status["join"]["parents_done"] == {"#g0": "SUCCEEDED", "#g1": "FAILED", "#g2": "SUCCEEDED"}
    assert status["after"]["status"] == "SKIPPED" and run["status"] == "FAILED"


def test_an_always_join_runs_after_a_failed_branch(wide_runtime: Any) -> None:
    run, _ = _run_counted(wide_runtime, "join_always")
    status = {s["stage_id"]: s["status"] for s in run["stages"]}
    assert status["b007"] == "FAILED" and status["join"] == "SUCCEEDED" and status["after"] == "SUCCEEDED"
    assert run["status"] == "FAILED"
