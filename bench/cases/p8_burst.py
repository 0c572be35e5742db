"""P8: one tenant's burst does not starve another (issue 15, backpressure and fair share).

Tenant A starts a fan-out of 1,000 stages (200 with --quick) while tenant B runs seq10; every stage is a debug.noop of
SLEEP_MS. The stage worker sits behind a capacity limiter that answers 429 like Cloud Run at max instances: at most
INSTANCES executions at once, the others refused (nacked, redelivered with backoff, dead-lettered after
MAX_DELIVERIES like the Terraform subscription). Embedded runtime: the in-process bus is the queue, its workers the
push deliveries; the limiter wraps the real stage_worker entry point.

Side by side in one run: B alone (its idle time), B during A's burst with fair share (A at its plan's 16 concurrent
stages), and B during the same burst with fair share off (A's cap raised to 100,000) to show what the cap buys.
Targets: 0 runs FAILED, 0 stage tasks dead-lettered for capacity, B's end-to-end during the burst <= 3x idle.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.harness import Case, CaseResult, Figure, Options, Target, progress
from bench.pipelines import fan_out, sequential
from bench.runs import execute, wait_terminal
from bench.tenants import onboard

A, B = "burstco", "steadyco"
BRANCHES, QUICK_BRANCHES = 1000, 200
SLEEP_MS = 50
INSTANCES = 20
"""Terraform's default max_instances of a function (concurrency 1 each)."""
BUS_WORKERS = 32
"""Deliveries in flight at once: more than INSTANCES, so the limiter refuses like Cloud Run does."""
MAX_DELIVERIES = 5
A_CAP = 16
"""The enterprise plan's concurrent_stages."""
UNCAPPED = 100_000
RATIO_TARGET = 3.0


class CapacityLimiter:
    """At most `instances` stage_worker executions at once; the next one is refused with a 429 (TransientError)."""

    def __init__(self, instances: int) -> None:
        self.instances = instances
        self.lock = threading.Lock()
        self.busy = 0
        self.refused = 0
        self.most: dict[str, int] = {}
        self._by_tenant: dict[str, int] = {}

    def wrap(self, real: Any) -> Any:
        from shared.errors import TransientError

        def limited(ctx: Any, task: Any) -> None:
            with self.lock:
                if self.busy >= self.instances:
                    self.refused += 1
                    raise TransientError("429: no available instance (max instances reached)", retry_after_seconds=0.05)
                self.busy += 1
                running = self._by_tenant[task.tenant_id] = self._by_tenant.get(task.tenant_id, 0) + 1
                self.most[task.tenant_id] = max(self.most.get(task.tenant_id, 0), running)
            try:
                real(ctx, task)
            finally:
                with self.lock:
                    self.busy -= 1
                    self._by_tenant[task.tenant_id] -= 1

        return limited


def _write_tenants(config_dir: Path, branches: int) -> None:
    for tenant, pipeline, text in (
        (A, "burst", fan_out("burst", branches)),
        (B, "seq10", sequential("seq10", 10)),
    ):
        folder = config_dir / tenant / "pipelines"
        folder.mkdir(parents=True)
        (config_dir / tenant / "tenant.yaml").write_text(f"tenant_id: {tenant}\nname: P8 {tenant}\nplan: enterprise\n")
        (folder / f"{pipeline}.yaml").write_text(text.replace("ps_type: debug.noop", _noop()))


def _noop() -> str:
    return f"ps_type: debug.noop, config: {{sleep_ms: {SLEEP_MS}}}"


def _wait_stage(runtime: Any, run_id: str, stage_id: str) -> None:
    from shared.contracts.state_paths import stage_path

    deadline = time.perf_counter() + 120
    while (runtime.context.state.get(stage_path(run_id, stage_id)) or {}).get("status") != "SUCCEEDED":
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{run_id}/{stage_id} did not succeed in 120 s")
        time.sleep(0.005)


def _b_end_to_end(runtime: Any, headers: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    ended, run = wait_terminal(runtime, execute(runtime, B, "seq10", headers), 600)
    return ended - started, str(run["status"])


def _phase(runtime: Any, headers: dict[str, dict[str, str]], a_cap: int | None) -> dict[str, Any]:
    """B alone (a_cap None) or B started once A's fan-out is dispatched; A and B waited to their ends."""
    from shared.tenancy.tenants import update_tenant

    if a_cap is None:
        seconds, status = _b_end_to_end(runtime, headers[B])
        return {"b_s": seconds, "statuses": [status]}
    update_tenant(runtime.context, A, {"limits": _limits(a_cap)}, actor="bench")
    a_run = execute(runtime, A, "burst", headers[A])
    _wait_stage(runtime, a_run, "root")  # A's fan-out is queued (or parked) when B starts
    seconds, b_status = _b_end_to_end(runtime, headers[B])
    _, a = wait_terminal(runtime, a_run, 900)
    runtime.wait_idle(300)
    return {"b_s": seconds, "statuses": [b_status, str(a["status"])]}


def _limits(concurrent_stages: int) -> dict[str, int]:
    from shared.plans import LIMIT_FIELDS, MAX_LIMIT

    return {**dict.fromkeys(LIMIT_FIELDS, MAX_LIMIT), "concurrent_stages": concurrent_stages}


def measure(options: Options) -> CaseResult:
    import functions.stage_worker as stage_worker
    from shared import logs
    from shared.app import embedded
    from shared.runtime.settings import Settings

    branches = QUICK_BRANCHES if options.quick else BRANCHES
    limiter = CapacityLimiter(INSTANCES)
    real_handler = stage_worker.execute_stage
    stage_worker.execute_stage = limiter.wrap(real_handler)  # type: ignore[assignment]
    phases: dict[str, dict[str, Any]] = {}
    dead: dict[str, int] = {}
    refused: dict[str, int] = {}
    most: dict[str, int] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="cloudact-bench-p8-") as tmp:
            config_dir = Path(tmp) / "tenant_configs"
            _write_tenants(config_dir, branches)
            logs.configure(level="ERROR")
            runtime = embedded.start(
                Settings(runtime="embedded", home=Path(tmp) / "home", config_dir=config_dir),
                workers=BUS_WORKERS,
                max_delivery_attempts=MAX_DELIVERIES,
                max_backoff_s=0.5,
            )
            try:
                headers = {A: onboard(runtime.context, A, _limits(A_CAP)), B: onboard(runtime.context, B, _limits(4))}
                for name, a_cap in (("idle", None), ("fair", A_CAP), ("uncapped", UNCAPPED)):
                    progress(
                        f"P8: B's seq10 {'alone' if a_cap is None else f'during A fan-out of {branches}'}"
                        + ("" if a_cap is None else f", A capped at {a_cap} concurrent stages")
                    )
                    before_dead, before_refused = int(runtime.bus.stats.dead_lettered), limiter.refused
                    limiter.most = {}
                    phases[name] = _phase(runtime, headers, a_cap)
                    dead[name] = int(runtime.bus.stats.dead_lettered) - before_dead
                    refused[name] = limiter.refused - before_refused
                    most[name] = limiter.most.get(A, 0)
            finally:
                runtime.close()
    finally:
        stage_worker.execute_stage = real_handler  # type: ignore[assignment]
    idle = phases["idle"]["b_s"]
    failed = sum(s != "SUCCEEDED" for p in ("idle", "fair") for s in phases[p]["statuses"])
    figures = [
        Figure("B seq10 end-to-end, alone", idle, "s", note=f"{SLEEP_MS} ms per stage"),
        Figure("B seq10 end-to-end during A's burst (fair share)", phases["fair"]["b_s"], "s"),
        Figure(
            "B during the burst / B alone (fair share)",
            phases["fair"]["b_s"] / idle,
            "x",
            Target("<=", RATIO_TARGET),
            note=f"A: {branches} stages, cap {A_CAP}, {most['fair']} invocations at most; {INSTANCES} instances",
        ),
        Figure("runs not SUCCEEDED (fair share)", failed, "runs", Target("<=", 0)),
        Figure("stage tasks dead-lettered for capacity (fair share)", dead["fair"], "tasks", Target("<=", 0)),
        Figure("429 refusals (fair share)", refused["fair"], "refusals"),
        Figure(
            "B during the burst / B alone (fair share off)",
            phases["uncapped"]["b_s"] / idle,
            "x",
            note=(
                f"A uncapped: {most['uncapped']} invocations at once; {refused['uncapped']} refusals, "
                f"{dead['uncapped']} dead-lettered; runs {', '.join(phases['uncapped']['statuses'])}"
            ),
        ),
    ]
    return CaseResult(
        "P8",
        CASE.title,
        "measured",
        figures,
        details={"phases": phases, "dead": dead, "refused": refused, "most": most},
    )


CASE = Case("P8", "burst: one tenant's fan-out of 1,000 vs another's seq10 behind a 429 limiter", measure)
