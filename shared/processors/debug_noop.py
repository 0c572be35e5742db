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


_CONFIG_TYPES: dict[str, type] = {"sleep_ms": int, "rows": int, "fail_transient_attempts": int, "fail_terminal": bool}


def validate_step(step: StepSpec) -> list[tuple[tuple[str | int, ...], str]]:
    """Known config keys with values of the right type; debug.noop reads and writes nothing."""
    issues: list[tuple[tuple[str | int, ...], str]] = []
    for key, value in step.config.items():
        expected = _CONFIG_TYPES.get(key)
        if expected is None:
            issues.append((("config", key), f"unknown debug.noop setting (known: {', '.join(_CONFIG_TYPES)})"))
        elif type(value) is not expected or (isinstance(value, int) and not isinstance(value, bool) and value < 0):
            kind = "a non-negative integer" if expected is int else "true or false"
            issues.append((("config", key), f"{key} must be {kind}, got {value!r}"))
    for field in ("source", "destination"):
        if getattr(step, field):
            issues.append(((field,), f"debug.noop takes no {field}"))
    return issues
