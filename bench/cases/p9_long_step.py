"""P9: a long step without a long invocation (issue 15).

One `debug.job` step (the stand-in for a BigQuery job, shared/processors/debug_job.py) whose job runs 10 minutes
(30 s with --quick), on the embedded runtime with every message delivered twice (forced redeliveries, re-checks
included). Every stage_worker invocation is timed at the function entry point. Targets: the run SUCCEEDED, no
invocation longer than 10 s, exactly one job submitted (one job document, one submit call).

Then, in the same bench run, the same job as on GCP, where completion events are wired (job_events_after_s 60):
after a minute no round follows the running job; the bench plays the log sink and publishes the job's completion
entry to cdp-job-events when the job ends. Figure: the stage_worker time spent on the job, events / back-to-back rounds.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.harness import Case, CaseResult, Figure, Options, Target, progress
from bench.pipelines import BENCH_TENANT, write_bench_tenant
from bench.runs import execute, succeeded_run, wait_terminal
from bench.tenants import onboard_unthrottled

JOB_S = 600
QUICK_JOB_S = 30
LONGEST_INVOCATION_TARGET_S = 10.0
CHAIN_TENANT, EVENTS_TENANT = BENCH_TENANT, "eventco"
EVENTS_AFTER_S = 60.0
"""Terraform's CLOUDACT_JOB_EVENTS_AFTER_S."""
QUICK_EVENTS_AFTER_S = 5.0
EVENTS_BUSY_RATIO_TARGET = 0.25
"""A 10-minute job: about a minute of rounds, then one round on its event (--quick: 5 s of a 30 s job)."""


class InvocationTimer:
    """Wraps the stage_worker's handler: the wall time of every invocation, with its tenant."""

    def __init__(self) -> None:
        self.durations: list[tuple[str, float]] = []
        self._lock = threading.Lock()

    def wrap(self, real: Any) -> Any:
        def timed(ctx: Any, task: Any) -> None:
            started = time.perf_counter()
            try:
                real(ctx, task)
            finally:
                with self._lock:
                    self.durations.append((task.tenant_id, time.perf_counter() - started))

        return timed


def _variant(tenant: str, tmp: Path, job_s: int, events_after_s: float | None) -> dict[str, Any]:
    """One runtime, one run of the long job; with `events_after_s`, the bench publishes the job's completion entry."""
    from shared import logs
    from shared.app import embedded
    from shared.processors.debug_job import job_path
    from shared.processors.jobs import stage_job_id
    from shared.runtime.settings import Settings

    config_dir = write_bench_tenant(tmp / "tenant_configs", tenant)
    (config_dir / tenant / "pipelines" / "long_job.yaml").write_text(
        "pipeline_id: long_job\ntimeout_minutes: 30\nsteps:\n"
        f"  - {{step_id: q, ps_type: debug.job, timeout_minutes: 20, config: {{duration_s: {job_s}}}}}\n"
    )
    logs.configure(level="WARNING")
    settings = Settings(runtime="embedded", home=tmp / "home", config_dir=config_dir, job_events_after_s=events_after_s)
    runtime = embedded.start(settings, duplicate_deliveries=2)
    try:
        headers = onboard_unthrottled(runtime.context, tenant)
        sink = None
        if events_after_s is not None:
            sink = threading.Thread(target=_play_the_sink, args=(runtime, tenant, job_s), daemon=True)
            sink.start()
        elapsed, run = _timed_run(runtime, tenant, headers, timeout_s=job_s + 300)
        job_id = stage_job_id(run["run_id"], "q", 1)
        state = runtime.context.state
        return {
            "elapsed": elapsed,
            "run": run,
            "jobs": 1 if state.get(job_path(job_id)) is not None else 0,
            "submits": int((state.get(f"{job_path(job_id)}_submits") or {}).get("calls", 0)),
            "rounds": int(run["stages"][0].get("poll_seq") or 0) + 1,
        }
    finally:
        runtime.close()


def _timed_run(runtime: Any, tenant: str, headers: dict[str, str], timeout_s: float) -> tuple[float, dict[str, Any]]:
    """Seconds from execute to the run's end. Not until the bus is idle: a job waiting for its event leaves it idle."""
    started = time.perf_counter()
    run_id = execute(runtime, tenant, "long_job", headers)
    ended, _ = wait_terminal(runtime, run_id, timeout_s, poll_s=0.05)
    runtime.wait_idle(60)
    return ended - started, succeeded_run(runtime, tenant, run_id, headers)


def _play_the_sink(runtime: Any, tenant: str, job_s: int) -> None:
    """What Cloud Logging's sink does on GCP: the job's completion entry to cdp-job-events when the job ends."""
    from shared.contracts import topics
    from shared.contracts.envelope import OutboundMessage
    from shared.processors.debug_job import job_path
    from shared.processors.jobs import stage_job_id
    from shared.runs.store import list_runs
    from tests.job_event_entries import completion_entry, stage_job_labels

    while not (runs := list_runs(runtime.context.state, tenant)):
        time.sleep(0.05)
    run_id = str(runs[0]["run_id"])
    job_id = stage_job_id(run_id, "q", 1)
    while (job := runtime.context.state.get(job_path(job_id))) is None:
        time.sleep(0.05)
    ends = datetime.fromisoformat(str(job["submitted_at"])).timestamp() + job_s
    time.sleep(max(0.0, ends - time.time()) + 0.05)
    labels = stage_job_labels(tenant, "long_job", run_id, "q", 1)
    entry = completion_entry(runtime.settings.project, job_id, labels)
    runtime.bus.publish(topics.JOB_EVENTS, [OutboundMessage(json.dumps(entry).encode())])


def measure(options: Options) -> CaseResult:
    import functions.stage_worker as stage_worker

    job_s = QUICK_JOB_S if options.quick else JOB_S
    events_after_s = QUICK_EVENTS_AFTER_S if options.quick else EVENTS_AFTER_S
    timer = InvocationTimer()
    real_handler = stage_worker.execute_stage
    stage_worker.execute_stage = timer.wrap(real_handler)  # type: ignore[assignment]
    results: dict[str, dict[str, Any]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="cloudact-bench-p9-") as tmp:
            # One after the other: an embedded runtime installs itself as the process's context.
            for name, tenant, after in (("chain", CHAIN_TENANT, None), ("events", EVENTS_TENANT, events_after_s)):
                how = "rounds back to back" if after is None else f"completion event after {after:.0f} s of rounds"
                progress(f"P9: one debug.job step of {job_s} s, every message delivered twice; {how}")
                results[name] = _variant(tenant, Path(tmp) / name, job_s, after)
    finally:
        stage_worker.execute_stage = real_handler  # type: ignore[assignment]
    chain, events = results["chain"], results["events"]
    busy = {t: sum(d for tenant, d in timer.durations if tenant == t) for t in (CHAIN_TENANT, EVENTS_TENANT)}
    longest = max(d for _, d in timer.durations)
    figures = [
        Figure("run wall time", chain["elapsed"], "s", note=f"job of {job_s} s; run {chain['run']['status']}"),
        Figure(
            "longest stage_worker invocation",
            longest,
            "s",
            Target("<=", LONGEST_INVOCATION_TARGET_S),
            samples=len(timer.durations),
            note="both variants",
        ),
        Figure("jobs submitted", chain["jobs"], "jobs", Target("<=", 1), note=f"{chain['submits']} submit call(s)"),
        Figure("submit calls", chain["submits"], "calls", Target("<=", 1)),
        Figure("poll rounds (re-check messages claimed)", chain["rounds"], "rounds"),
        Figure("stage_worker time on the job, back-to-back rounds", busy[CHAIN_TENANT], "s"),
        Figure(
            "stage_worker time on the job, completion events (GCP)",
            busy[EVENTS_TENANT],
            "s",
            note=f"{events['rounds']} rounds; run {events['run']['status']} in {events['elapsed']:.1f} s; "
            f"{events['submits']} submit call(s)",
        ),
        Figure(
            "stage_worker time, events / rounds",
            busy[EVENTS_TENANT] / busy[CHAIN_TENANT],
            "x",
            Target("<=", EVENTS_BUSY_RATIO_TARGET),
            note=f"rounds back to back for the first {events_after_s:.0f} s, then the event",
        ),
        Figure("stage_worker invocations", len(timer.durations), "calls", note="duplicates of each delivery included"),
    ]
    details = {"invocations_s": timer.durations, "job_s": job_s, "busy_s": busy}
    return CaseResult("P9", CASE.title, "measured", figures, details=details)


CASE = Case("P9", "a 10-minute job step: no invocation over 10 s, one job across redeliveries", measure)
