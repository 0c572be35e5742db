"""P1: orchestration overhead on the embedded runtime (every function in one process, in-process bus, SQLite, DuckDB).

- warm, in process: one runtime, runs through the real `api` entry point, timed from the POST until the bus is idle
  (stages, run finalisation, metadata rows and the notifier all done); seq10 and fan100 alternate round by round so
  both see the same machine noise;
- cold: a whole `cloudact run benchco seq10 --quiet` process (interpreter start, imports, runtime start, run, exit).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import REPO_ROOT, Case, CaseResult, Figure, Options, Target, median, percentile, progress
from bench.pipelines import BENCH_TENANT, write_bench_tenant
from bench.runs import execute, succeeded_run
from bench.tenants import onboard_unthrottled

# Published figures for 10 sequential tasks (context only; other machines, other setups).
PUBLISHED_SEQ10_S = {"Airflow": 54.7, "Prefect": 15.5, "Temporal": 7.2}
SEQ10_TARGET_S = 0.15
FAN100_TARGET_S = 0.75
PROCESS_TARGET_S = 1.5


def timed_run(
    runtime: Any, pipeline_id: str, headers: dict[str, str], timeout_s: float = 120.0
) -> tuple[float, dict[str, Any]]:
    """Seconds from the execute request until the bus is idle, and the finished run (read after the clock stops)."""
    started = time.perf_counter()
    run_id = execute(runtime, BENCH_TENANT, pipeline_id, headers)
    if not runtime.wait_idle(timeout_s):
        raise RuntimeError(f"{pipeline_id} did not finish in {timeout_s:.0f} s")
    elapsed = time.perf_counter() - started
    return elapsed, succeeded_run(runtime, BENCH_TENANT, run_id, headers)


def warm_in_process(config_dir: Path, home: Path, rounds: int, warmup: int) -> dict[str, list[float]]:
    from shared import logs
    from shared.app import embedded
    from shared.runtime.settings import Settings

    logs.configure(level="WARNING")
    runtime = embedded.start(Settings(runtime="embedded", home=home, config_dir=config_dir))
    samples: dict[str, list[float]] = {"seq10": [], "fan100": []}
    try:
        headers = onboard_unthrottled(runtime.context, BENCH_TENANT)
        for i in range(warmup + rounds):
            for pipeline_id in ("seq10", "fan100"):
                elapsed, _ = timed_run(runtime, pipeline_id, headers)
                if i >= warmup:
                    samples[pipeline_id].append(elapsed)
    finally:
        runtime.close()
    return samples


def whole_process(config_dir: Path, home: Path, runs: int) -> list[float]:
    """Wall seconds of `cloudact run benchco seq10 --quiet`, each a fresh interpreter (the state folder is kept)."""
    from shared.runtime.context import Context
    from shared.runtime.settings import Settings

    ctx = Context(Settings(runtime="embedded", home=home, config_dir=config_dir))
    try:
        onboard_unthrottled(ctx, BENCH_TENANT)
    finally:
        ctx.close()  # releases the DuckDB file before the CLI process opens it
    cli = Path(sys.executable).with_name("cloudact")
    env = {
        **os.environ,
        "CLOUDACT_CONFIG_DIR": str(config_dir),
        "CLOUDACT_HOME": str(home),
        "CLOUDACT_RUNTIME": "embedded",
    }
    out: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(
            [str(cli), "run", BENCH_TENANT, "seq10", "--quiet"], cwd=REPO_ROOT, env=env, capture_output=True, text=True
        )
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"cloudact run exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        out.append(elapsed)
    return out


def measure(options: Options) -> CaseResult:
    rounds, warmup, processes = (5, 1, 2) if options.quick else (25, 3, 7)
    with tempfile.TemporaryDirectory(prefix="cloudact-bench-p1-") as tmp:
        config_dir = write_bench_tenant(Path(tmp) / "tenant_configs")
        progress(f"P1: {warmup} warm-up + {rounds} rounds of seq10 and fan100 on the embedded runtime")
        warm = warm_in_process(config_dir, Path(tmp) / "home-warm", rounds, warmup)
        progress(f"P1: {processes} whole `cloudact run` processes")
        cold = whole_process(config_dir, Path(tmp) / "home-cold", processes)
    seq, fan = warm["seq10"], warm["fan100"]
    seq_median, cold_median = median(seq), median(cold)
    figures = [
        Figure("seq10 warm, median", seq_median, "s", Target("<=", SEQ10_TARGET_S), samples=len(seq)),
        Figure("seq10 warm, p95", percentile(seq, 95), "s", samples=len(seq)),
        Figure("seq10 warm, per stage (median / 10)", seq_median / 10 * 1000, "ms"),
        Figure("fan100 warm, median", median(fan), "s", Target("<=", FAN100_TARGET_S), samples=len(fan)),
        Figure("fan100 warm, p95", percentile(fan, 95), "s", samples=len(fan)),
        Figure(
            "seq10 whole `cloudact run` process, median",
            cold_median,
            "s",
            Target("<=", PROCESS_TARGET_S),
            samples=len(cold),
        ),
        Figure("seq10 whole process, p95", percentile(cold, 95), "s", samples=len(cold)),
    ]
    for name, published in PUBLISHED_SEQ10_S.items():
        figures.append(
            Figure(
                f"{name} seq10 {published} s (published) / ours warm",
                published / seq_median,
                "x",
                note=f"/ ours whole process: {published / cold_median:,.0f}x",
            )
        )
    return CaseResult(
        "P1",
        CASE.title,
        "measured",
        figures,
        details={
            "samples_s": {"seq10": seq, "fan100": fan, "whole_process_seq10": cold},
            "published_seq10_s": PUBLISHED_SEQ10_S,
            "runtime": "embedded: in-process bus (8 workers), SQLite state, DuckDB warehouse",
        },
    )


CASE = Case("P1", "no-op pipelines on the embedded runtime", measure)
