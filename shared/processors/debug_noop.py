"""`debug.noop`: does nothing, on purpose. Used by benchmarks (pure orchestration overhead) and fault drills.

config:
  sleep_ms: int                 wait this long (the engine's timeout cuts a step that overruns)
  rows: int                     report this many rows written
  fail_transient_attempts: int  raise a TransientError on attempts 1..N (then succeed)
  fail_terminal: bool           raise a TerminalError on every attempt
"""

from __future__ import annotations

import time

from shared.errors import TerminalError, TransientError
from shared.pipelines.spec import StepSpec
from shared.processors.base import StepContext, StepResult


class DebugNoop:
    def run(self, step: StepSpec, ctx: StepContext) -> StepResult:
        cfg = step.config
        if cfg.get("fail_terminal"):
            raise TerminalError(f"step {step.step_id} is configured to fail (fail_terminal)")
        if ctx.attempt <= int(cfg.get("fail_transient_attempts", 0)):
            raise TransientError(f"step {step.step_id}: injected transient failure on attempt {ctx.attempt}")
        sleep_s = int(cfg.get("sleep_ms", 0)) / 1000
        if sleep_s:
            time.sleep(sleep_s)
        return StepResult(rows_out=int(cfg.get("rows", 0)))


PROCESSOR = DebugNoop()
