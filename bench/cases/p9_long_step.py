"""P9: a long step without a long invocation (issue 15).

One `debug.job` step (the stand-in for a BigQuery job, shared/processors/debug_job.py) whose job runs 10 minutes
(30 s with --quick), on the embedded runtime with every message delivered twice (forced redeliveries, re-checks
included). Every stage_worker invocation is timed at the function entry point. Targets: the run SUCCEEDED, no
invocation longer than 10 s, exactly one job submitted (one job document, one submit call).
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.cases.p1_embedded import timed_run
from bench.harness import Case, CaseResult, Figure, Options, Target, progress
from bench.pipelines import BENCH_TENANT, write_bench_tenant
from bench.tenants import onboard_unthrottled

JOB_S = 600
QUICK_JOB_S = 30
LONGEST_INVOCATION_TARGET_S = 10.0


class InvocationTimer:
    """Wraps the stage_worker's handler: the wall time of every invocation."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self._lock = threading.Lock()

    def wrap(self, real: Any) -> Any:
        def timed(ctx: Any, task: Any) -> None:
            started = time.perf_counter()
            try:
                real(ctx, task)
            finally:
                with self._lock:
                    self.durations.append(time.perf_counter() - started)

        return timed


def measure(options: Options) -> CaseResult:
    import functions.stage_worker as stage_worker
    from shared import logs
    from shared.app import embedded
    from shared.processors.debug_job import job_path
    from shared.processors.jobs import stage_job_id
    from shared.runtime.settings import Settings

    job_s = QUICK_JOB_S if options.quick else JOB_S
    timer = InvocationTimer()
    real_handler = stage_worker.execute_stage
    stage_worker.execute_stage = timer.wrap(real_handler)  # type: ignore[assignment]
    try:
        with tempfile.TemporaryDirectory(prefix="cloudact-bench-p9-") as tmp:
            config_dir = write_bench_tenant(Path(tmp) / "tenant_configs")
            (config_dir / BENCH_TENANT / "pipelines" / "long_job.yaml").write_text(
                "pipeline_id: long_job\ntimeout_minutes: 30\nsteps:\n"
                f"  - {{step_id: q, ps_type: debug.job, timeout_minutes: 20, config: {{duration_s: {job_s}}}}}\n"
            )
            logs.configure(level="WARNING")
            runtime = embedded.start(
                Settings(runtime="embedded", home=Path(tmp) / "home", config_dir=config_dir), duplicate_deliveries=2
            )
            try:
                headers = onboard_unthrottled(runtime.context, BENCH_TENANT)
                progress(f"P9: one debug.job step of {job_s} s, every message delivered twice")
                elapsed, run = timed_run(runtime, "long_job", headers, timeout_s=job_s + 300)
                job_id = stage_job_id(run["run_id"], "q", 1)
                state = runtime.context.state
                jobs = 1 if state.get(job_path(job_id)) is not None else 0
                submits = int((state.get(f"{job_path(job_id)}_submits") or {}).get("calls", 0))
                stage = run["stages"][0]
            finally:
                runtime.close()
    finally:
        stage_worker.execute_stage = real_handler  # type: ignore[assignment]
    longest = max(timer.durations)
    figures = [
        Figure("run wall time", elapsed, "s", note=f"job of {job_s} s; run {run['status']}"),
        Figure(
            "longest stage_worker invocation",
            longest,
            "s",
            Target("<=", LONGEST_INVOCATION_TARGET_S),
            samples=len(timer.durations),
        ),
        Figure("jobs submitted", jobs, "jobs", Target("<=", 1), note=f"{submits} submit call(s)"),
        Figure("submit calls", submits, "calls", Target("<=", 1)),
        Figure("poll rounds (re-check messages claimed)", int(stage.get("poll_seq") or 0) + 1, "rounds"),
        Figure("stage_worker invocations", len(timer.durations), "calls", note="duplicates of each delivery included"),
    ]
    return CaseResult("P9", CASE.title, "measured", figures, details={"invocations_s": timer.durations, "job_s": job_s})


CASE = Case("P9", "a 10-minute job step: no invocation over 10 s, one job across redeliveries", measure)
