"""The reliability suite's crash injector (reliability/faults.py) on a real embedded run: it must really crash the
worker at the chosen boundary (or `make reliability` would prove nothing), and the run must recover from it."""

from __future__ import annotations

from typing import Any

import pytest

from reliability.faults import CrashPoint, FaultInjector, SimulatedCrash, every_boundary
from tests.conftest import run_to_end


@pytest.fixture
def injector() -> Any:
    faults = FaultInjector()
    faults.install()
    yield faults
    faults.uninstall()


def test_crash_after_a_stage_succeeded_is_injected_once_and_the_run_recovers(runtime: Any, injector: Any) -> None:
    point = CrashPoint("a: SUCCEEDED recorded, before dispatching", "transition", "after", "SUCCEEDED", "a")
    injector.plan("drill-1", point)
    run = run_to_end(runtime, "testco", "fan_join", idempotency_key="drill-1")
    assert injector.fired("drill-1") == 1
    assert run["status"] == "SUCCEEDED"
    assert all(len(s["attempts"]) == 1 for s in run["stages"])  # redelivery dispatched b and c; nothing re-ran
    assert runtime.bus.stats.nacked >= 1  # the crash was a real nack, not swallowed by the app


def test_a_run_without_a_plan_is_untouched_and_uninstall_restores_the_engine(runtime: Any) -> None:
    import shared.runs.engine as engine

    original = engine.transition
    faults = FaultInjector()
    faults.install()
    assert engine.transition is not original
    try:
        run = run_to_end(runtime, "testco", "fan_join", idempotency_key="no-plan")
    finally:
        faults.uninstall()
    assert engine.transition is original
    assert run["status"] == "SUCCEEDED" and runtime.bus.stats.nacked == 0


def test_every_boundary_names_each_point_once() -> None:
    points = every_boundary(["a", "b"])
    assert len(points) == 5 + 2 * 6
    assert len({p.name for p in points}) == len(points)
    assert issubclass(SimulatedCrash, BaseException) and not issubclass(SimulatedCrash, Exception)
