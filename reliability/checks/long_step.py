"""Long step with redeliveries: runs whose one step is a 12 s job (debug.job), every message delivered twice, and
one re-check per run lost as if its worker died after its poll round (the chain breaks; the watchdog's ticks find the
stale chain and re-dispatch it). Each run must succeed with exactly one job submitted, and no invocation may wait on
the job longer than a poll round (issue 15, "long-running steps without a long-running function").
"""

from __future__ import annotations

import threading
import time
from typing import Any

import functions.stage_worker as stage_worker
import shared.runs.stage_jobs as stage_jobs
from reliability.drill import embedded_drill
from reliability.harness import Figure, Options, figure, info, ratio
from shared.processors.debug_job import job_path
from shared.processors.jobs import stage_job_id

NAME = "long step with redeliveries"
LONGEST_INVOCATION_S = 10.0


class Faults:
    """Times every stage_worker invocation; drops the first re-check of each run (a worker dying after its round)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.durations: list[float] = []
        self.dropped: set[str] = set()
        self._handler = stage_worker.execute_stage
        self._publish = stage_jobs.publish_stage_tasks

    def __enter__(self) -> Faults:
        def timed(ctx: Any, task: Any) -> None:
            started = time.perf_counter()
            try:
                self._handler(ctx, task)
            finally:
                with self.lock:
                    self.durations.append(time.perf_counter() - started)

        def lossy(bus: Any, run: dict[str, Any], ids: Any, poll_seq: int | None = None) -> None:
            with self.lock:
                drop = poll_seq is not None and run["run_id"] not in self.dropped
                if drop:
                    self.dropped.add(run["run_id"])
            if not drop:
                self._publish(bus, run, ids, poll_seq=poll_seq)

        stage_worker.execute_stage = timed  # type: ignore[assignment]
        stage_jobs.publish_stage_tasks = lossy  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        stage_worker.execute_stage = self._handler  # type: ignore[assignment]
        stage_jobs.publish_stage_tasks = self._publish  # type: ignore[assignment]


def run(options: Options) -> list[Figure]:
    wanted = 3 if options.quick else 6
    stale = stage_jobs.STALE_AFTER_S
    stage_jobs.STALE_AFTER_S = 3.0  # a broken chain is taken over after 3 s here (35 s in production)
    try:
        with Faults() as faults, embedded_drill(maintenance_every_s=1.0, duplicate_deliveries=2) as drill:
            started = time.monotonic()
            run_ids = [drill.start("long_job", key=f"long-{i:02d}") for i in range(wanted)]
            runs = drill.wait_terminal(run_ids, 180, finalized=True)
            elapsed = time.monotonic() - started
            submits = {
                r: (
                    drill.state.get(job_path(stage_job_id(r, "job", 1))) is not None,
                    int((drill.state.get(f"{job_path(stage_job_id(r, 'job', 1))}_submits") or {}).get("calls", 0)),
                )
                for r in run_ids
            }
    finally:
        stage_jobs.STALE_AFTER_S = stale
    succeeded = [r for r in run_ids if runs[r]["status"] == "SUCCEEDED"]
    one_job = [r for r in run_ids if submits[r] == (True, 1)]
    longest = max(faults.durations)
    return [
        figure(NAME, "runs SUCCEEDED", ratio(len(succeeded), wanted), len(succeeded) == wanted, "100 %"),
        figure(
            NAME,
            "runs with exactly one job submitted",
            ratio(len(one_job), wanted),
            len(one_job) == wanted,
            "100 %",
            "every message delivered twice",
        ),
        figure(
            NAME,
            "runs whose re-check chain broke and was taken over",
            ratio(len(faults.dropped), wanted),
            len(faults.dropped) == wanted,
            "100 %",
        ),
        figure(
            NAME,
            "longest stage_worker invocation",
            f"{longest:.1f} s",
            longest <= LONGEST_INVOCATION_S,
            f"<= {LONGEST_INVOCATION_S:g} s",
            f"{len(faults.durations)} invocations",
        ),
        info(NAME, "wave wall time", f"{elapsed:.1f} s", f"{wanted} runs of a 12 s job, concurrently"),
    ]
