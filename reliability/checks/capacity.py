"""Capacity throttling: stage tasks refused like Cloud Run answers 429 at max instances (the function never runs,
the message is nacked), for longer than a subscription's whole retry policy. Capacity is never a failure: every run
must succeed, each refused task being dead-lettered and re-dispatched, never failed (issue 15, backpressure).
"""

from __future__ import annotations

import threading
from typing import Any

import functions.stage_worker as stage_worker
from reliability.drill import embedded_drill
from reliability.harness import Figure, Options, figure, info, ratio
from shared.errors import TransientError

NAME = "capacity throttling"
MAX_DELIVERIES = 4
REFUSALS_PER_STAGE = 2 * MAX_DELIVERIES
"""Two whole delivery cycles refused per stage: each stage is dead-lettered twice before it gets an instance."""


class Throttle:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.refused: dict[tuple[str, str], int] = {}
        self._handler = stage_worker.execute_stage

    def __enter__(self) -> Throttle:
        def limited(ctx: Any, task: Any) -> None:
            key = (task.run_id, task.stage_id)
            with self.lock:
                refuse = self.refused.get(key, 0) < REFUSALS_PER_STAGE
                if refuse:
                    self.refused[key] = self.refused.get(key, 0) + 1
            if refuse:
                raise TransientError("429: no available instance (capacity drill)", retry_after_seconds=0.0)
            self._handler(ctx, task)

        stage_worker.execute_stage = limited  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        stage_worker.execute_stage = self._handler  # type: ignore[assignment]


def run(options: Options) -> list[Figure]:
    wanted = 4 if options.quick else 10
    with Throttle() as throttle, embedded_drill(max_delivery_attempts=MAX_DELIVERIES, max_backoff_s=0.05) as drill:
        run_ids = [drill.start("seq3", key=f"cap-{i:02d}") for i in range(wanted)]
        runs = drill.wait_terminal(run_ids, 180)
        dead_lettered = int(drill.bus.stats.dead_lettered)
    succeeded = [r for r in run_ids if runs[r]["status"] == "SUCCEEDED"]
    stages = [s for r in run_ids for s in runs[r].get("stages", [])]
    redispatched = sum(int(s.get("redispatched") or 0) for s in stages)
    one_attempt = sum(len(s.get("attempts") or []) == 1 for s in stages)
    return [
        figure(
            NAME,
            "runs SUCCEEDED though every stage was refused twice its deliveries",
            ratio(len(succeeded), wanted),
            len(succeeded) == wanted,
            "100 %",
        ),
        figure(
            NAME,
            "stages run exactly once",
            ratio(one_attempt, len(stages)),
            one_attempt == len(stages),
            "100 %",
            "a refusal is not an attempt",
        ),
        figure(
            NAME,
            "stage re-dispatches after a dead letter",
            redispatched,
            redispatched == 2 * len(stages),
            f"{2 * len(stages)}",
            "2 per stage: capacity throttling never fails a stage",
        ),
        info(NAME, "tasks refused", sum(throttle.refused.values()), f"{MAX_DELIVERIES} deliveries per message"),
        info(NAME, "messages dead-lettered", dead_lettered),
    ]
