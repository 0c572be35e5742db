"""The pipeline YAML spec (pydantic). Vocabulary follows the original system: pipeline_id, steps[], ps_type, depends_on.

Structural rules that need the whole document (unique ids, known dependencies, no cycles, known ps_type) are checked
in `validate_graph` so each problem can be reported against its own YAML line.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryPolicy(_Strict):
    max_attempts: int = Field(default=3, ge=1, le=20, description="Attempts in all, the first included.")
    backoff_seconds: float = Field(default=10.0, ge=0, le=600, description="Delay before the second attempt.")
    backoff_multiplier: float = Field(default=2.0, ge=1, le=10, description="Each further delay is this much longer.")
    max_backoff_seconds: float = Field(default=600.0, ge=0, le=3600)

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before `attempt` (2 = the first retry)."""
        if attempt <= 1:
            return 0.0
        return float(min(self.max_backoff_seconds, self.backoff_seconds * self.backoff_multiplier ** (attempt - 2)))


class Schedule(_Strict):
    cron: str
    timezone: str = "UTC"
    misfire: Literal["skip", "catch_up"] = "skip"


class Parameter(_Strict):
    type: Literal["string", "int", "number", "bool", "date", "timestamp"] = "string"
    required: bool = False
    default: Any = None
    description: str | None = None


class StepSpec(_Strict):
    step_id: str = Field(pattern=IDENTIFIER.pattern, description="Unique in the pipeline; lower_snake_case.")
    name: str | None = None
    ps_type: str = Field(description="Processor type, e.g. bigquery.query, arrow.transform, debug.noop.")
    depends_on: list[str] = Field(default_factory=list)
    timeout_minutes: float = Field(default=30.0, gt=0, le=540)
    retries: RetryPolicy = Field(default_factory=RetryPolicy)
    trigger: Literal["on_success", "on_failure", "always"] = "on_success"
    source: dict[str, Any] = Field(default_factory=dict)
    destination: dict[str, Any] | None = None
    config: dict[str, Any] = Field(default_factory=dict, description="Processor-specific settings.")


class PipelineSpec(_Strict):
    pipeline_id: str = Field(pattern=IDENTIFIER.pattern)
    description: str = ""
    variables: dict[str, Any] = Field(default_factory=dict)
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    schedule: Schedule | None = None
    timeout_minutes: float = Field(default=120.0, gt=0, le=1440)
    retries: RetryPolicy | None = Field(default=None, description="Default retry policy for steps that set none.")
    steps: list[StepSpec] = Field(min_length=1)

    def step(self, step_id: str) -> StepSpec:
        for step in self.steps:
            if step.step_id == step_id:
                return step
        raise KeyError(step_id)

    def dependants(self) -> dict[str, list[str]]:
        """step_id -> the steps that list it in depends_on."""
        out: dict[str, list[str]] = {s.step_id: [] for s in self.steps}
        for step in self.steps:
            for dep in step.depends_on:
                out.setdefault(dep, []).append(step.step_id)
        return out

    def roots(self) -> list[str]:
        return [s.step_id for s in self.steps if not s.depends_on]
