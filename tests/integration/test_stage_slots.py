"""Fair share: a tenant executes at most `concurrent_stages` stages at once; the rest wait parked, in order, and every
one of them runs (shared/runs/stage_slots.py). Counted, not timed: the cap is checked by the most stages ever seen
executing together, which a missing cap exceeds whatever the machine's speed."""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import shared.processors.debug_noop as debug_noop
import shared.processors.registry as registry
from shared.clock import iso, utc_now
from shared.runs import stage_slots
from shared.runs.watchdog import watchdog
from shared.tenancy import slots
from shared.tenancy.slots import STAGE_SLOTS
from shared.tenancy.tenants import update_tenant
from tests.conftest import auth, execute, run_to_end
from tests.integration.test_dag_work import fan_in_yaml

TENANT = "fairco"
CAP = 3


class ConcurrencyProbe:
    """Wraps debug.noop: records how many stages of each tenant execute at the same moment."""

    def __init__(self, sleep_s: float) -> None:
        self.sleep_s = sleep_s
        self.lock = threading.Lock()
        self.now: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.inner = debug_noop.SPEC.processor

    def run(self, step: Any, ctx: Any) -> Any:
        with self.lock:
            self.now[ctx.tenant_id] = self.now.get(ctx.tenant_id, 0) + 1
            self.most[ctx.tenant_id] = max(self.most.get(ctx.tenant_id, 0), self.now[ctx.tenant_id])
        try:
            threading.Event().wait(self.sleep_s)  # long enough for the bus's 8 workers to overlap stages
            return self.inner.run(step, ctx)
        finally:
            with self.lock:
                self.now[ctx.tenant_id] -= 1


@pytest.fixture
def fair_runtime(config_dir: Path, make_runtime: Any) -> Any:
    tenant = config_dir / TENANT
    (tenant / "pipelines").mkdir(parents=True)
    (tenant / "tenant.yaml").write_text(f"tenant_id: {TENANT}\nname: Fair share\nplan: enterprise\n")
    (tenant / "pipelines" / "fan12.yaml").write_text(fan_in_yaml("fan12", 12))
    runtime = make_runtime()
    update_tenant(runtime.context, TENANT, {"limits": {"concurrent_stages": CAP}})
    return runtime


def _held(runtime: Any) -> dict[int, Any]:
    return slots.held(runtime.context.state, TENANT, STAGE_SLOTS)


def _parked(runtime: Any) -> list[Any]:
    return runtime.context.state.list(stage_slots.PARKED)


def test_a_fan_out_runs_at_most_its_cap_at_once_and_every_stage_runs(fair_runtime: Any, monkeypatch: Any) -> None:
    probe = ConcurrencyProbe(sleep_s=0.05)
    monkeypatch.setattr(debug_noop, "SPEC", dataclasses.replace(debug_noop.SPEC, processor=probe))
    registry.get_spec.cache_clear()  # the registry reads the module's SPEC again
    try:
        run = run_to_end(fair_runtime, TENANT, "fan12", timeout=120)
    finally:
        monkeypatch.undo()
        registry.get_spec.cache_clear()
    assert run["status"] == "SUCCEEDED", run.get("error")
    assert all(len(s["attempts"]) == 1 for s in run["stages"])
    assert probe.most[TENANT] == CAP  # reached, never exceeded: 12 branches wanted to run together
    assert _held(fair_runtime) == {} and _parked(fair_runtime) == []


def test_a_lost_wake_up_is_repaired_by_the_watchdog(fair_runtime: Any, monkeypatch: Any) -> None:
    """A crash between freeing a slot and waking a parked stage, every time: the watchdog's sweep wakes them."""
    real_pump = stage_slots.pump
    monkeypatch.setattr(stage_slots, "pump", lambda ctx, tenant_id, wakes=1: 0)
    started = execute(fair_runtime, TENANT, "fan12")
    assert started.status == 202, started.body
    assert fair_runtime.wait_idle(60)
    assert len(_parked(fair_runtime)) == 12 - CAP and _held(fair_runtime) == {}  # stuck: nobody will wake them
    monkeypatch.setattr(stage_slots, "pump", real_pump)
    later = utc_now() + timedelta(seconds=stage_slots.PARKED_SWEEP_AFTER_S + 1)
    woken = []
    while _parked(fair_runtime) and len(woken) < 20:
        woken.append(watchdog(fair_runtime.context, now=later)["parked_stages_woken"])
        assert fair_runtime.wait_idle(60)
    assert _parked(fair_runtime) == [] and sum(woken) >= 1
    run = fair_runtime.call_api(
        "GET",
        f"/api/v1/tenants/{TENANT}/metadata/executions/{started.body['run_id']}",
        headers=auth(fair_runtime, TENANT),
    ).body
    assert run["status"] == "SUCCEEDED", run.get("error")


def test_a_slot_leaked_by_a_crash_is_reclaimed_when_the_tenant_is_at_its_cap(fair_runtime: Any) -> None:
    ctx = fair_runtime.context
    old = utc_now() - timedelta(seconds=stage_slots.STALE_SLOT_S + 5)
    for index in range(CAP):  # every slot held by a stage that no longer exists (its run was deleted, say)
        ctx.state.set(
            slots.slot_path(TENANT, index, STAGE_SLOTS), {"holder": f"run_gone/s{index}", "reserved_at": iso(old)}
        )
    run = run_to_end(fair_runtime, TENANT, "fan12", timeout=120)
    assert run["status"] == "SUCCEEDED", run.get("error")
    assert _held(fair_runtime) == {} and _parked(fair_runtime) == []
