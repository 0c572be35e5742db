"""Capacity throttling is never a failure: a stage task refused until its deliveries run out is re-dispatched.

On GCP a push to a function at max instances is answered 429 by Cloud Run before our code runs; Pub/Sub retries,
then dead-letters the task. Here the stage worker refuses stage b's first deliveries the same way (nack, nothing
recorded), more times than the subscription delivers one message.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest

import functions.stage_worker as stage_worker
from shared.errors import TransientError
from shared.runtime.settings import Settings
from tests.conftest import run_to_end

MAX_DELIVERIES = 3


class Throttle:
    """Refuses the first `refusals` deliveries of one stage's task, like Cloud Run at max instances."""

    def __init__(self, stage_id: str, refusals: int) -> None:
        self.stage_id, self.left = stage_id, refusals
        self.lock = threading.Lock()

    def wrap(self, real: Any) -> Any:
        def execute(ctx: Any, task: Any) -> None:
            with self.lock:
                refuse = task.stage_id == self.stage_id and self.left > 0
                self.left -= refuse
            if refuse:
                raise TransientError("429: no available instance", retry_after_seconds=0.0)
            real(ctx, task)

        return execute


def _throttle(monkeypatch: Any, refusals: int) -> None:
    monkeypatch.setattr(stage_worker, "execute_stage", Throttle("b", refusals).wrap(stage_worker.execute_stage))


def test_a_stage_throttled_past_its_deliveries_is_redispatched_and_succeeds(
    make_runtime: Any, monkeypatch: Any
) -> None:
    _throttle(monkeypatch, refusals=2 * MAX_DELIVERIES)  # two whole delivery cycles refused
    runtime = make_runtime(max_delivery_attempts=MAX_DELIVERIES)
    run = run_to_end(runtime, "testco", "fan_join")
    assert run["status"] == "SUCCEEDED", run.get("error")
    b = next(s for s in run["stages"] if s["stage_id"] == "b")
    assert b["redispatched"] == 2 and [a["status"] for a in b["attempts"]] == ["SUCCEEDED"]
    assert runtime.bus.stats.dead_lettered == 2


class TestRedispatchLimit:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return dataclasses.replace(settings, stage_redispatches=1)

    def test_a_task_that_never_gets_through_fails_its_stage_after_the_limit(
        self, make_runtime: Any, monkeypatch: Any
    ) -> None:
        _throttle(monkeypatch, refusals=10 * MAX_DELIVERIES)
        runtime = make_runtime(max_delivery_attempts=MAX_DELIVERIES)
        run = run_to_end(runtime, "testco", "fan_join")
        assert run["status"] == "FAILED"
        b = next(s for s in run["stages"] if s["stage_id"] == "b")
        assert b["status"] == "FAILED" and "re-dispatched 1 time(s)" in b["error"], b
        assert runtime.bus.stats.dead_lettered == 2
