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
from shared.pipelines.spec import StepIssue, StepSpec
from shared.pipelines.templating import ValidationScope
from shared.processors.base import StepContext, StepResult
from shared.processors.contract import ProcessorSpec, settings_doc


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


_CONFIG_TYPES: dict[str, type] = {"sleep_ms": int, "rows": int, "fail_transient_attempts": int, "fail_terminal": bool}


def validate_step(step: StepSpec, scope: ValidationScope) -> list[StepIssue]:
    """Known config keys with values of the right type; debug.noop reads and writes nothing."""
    return plain_config_issues(step, _CONFIG_TYPES)


def plain_config_issues(step: StepSpec, types: dict[str, type]) -> list[StepIssue]:
    """The debug steps' settings: only `config`, each key known and of its type (ints non-negative)."""
    issues: list[StepIssue] = []
    for key, value in step.config.items():
        expected = types.get(key)
        if expected is None:
            issues.append(StepIssue(("config", key), f"unknown {step.ps_type} setting (known: {', '.join(types)})"))
        elif type(value) is not expected or (isinstance(value, int) and not isinstance(value, bool) and value < 0):
            kind = "a non-negative integer" if expected is int else "true or false"
            issues.append(StepIssue(("config", key), f"{key} must be {kind}, got {value!r}"))
    for field in ("source", "destination"):
        if getattr(step, field):
            issues.append(StepIssue((field,), f"{step.ps_type} takes no {field}"))
    return issues


SPEC = ProcessorSpec(
    ps_type="debug.noop",
    summary="does nothing, on purpose. Used by benchmarks (pure orchestration overhead) and fault drills.",
    processor=DebugNoop(),
    validate=validate_step,
    settings_doc=settings_doc(__doc__),
)
