"""The pipeline YAML spec (pydantic). Vocabulary follows the original system: pipeline_id, variables, parameters,
schedule, timeout_minutes, retries, steps[] with step_id, ps_type, depends_on, trigger, source, destination.

What one field can check is checked here; rules that need the whole document (unique ids, known dependencies, no
cycles, known ps_type, names shared by a parameter and a variable) are in `graph.py`, and each processor checks its
own settings (the `validate` of its SPEC), so every problem is reported against its own YAML line.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import lru_cache
from typing import Annotated, Any, Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from shared.pipelines import parameters as params

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def _name(value: str) -> str:
    if not IDENTIFIER.match(value):
        raise ValueError(f"{value!r} is not a valid name: lower_snake_case, starting with a letter, at most 63 chars")
    if value in params.BUILTIN_NAMES:
        raise ValueError(f"{value!r} is built in ({', '.join(sorted(params.BUILTIN_NAMES))}); pick another name")
    return value


def _scalar(value: Any) -> Any:
    """A variable's value as the run snapshot will hold it: a YAML date becomes its ISO text here already, so a run
    sees exactly what validation saw."""
    if value is None or not isinstance(value, str | int | float | bool | date | datetime):
        raise ValueError("a variable is a string, number, bool or date (not a list, mapping or null)")
    return value.isoformat() if isinstance(value, date | datetime) else value


Name = Annotated[str, AfterValidator(_name)]
VariableValue = Annotated[Any, AfterValidator(_scalar)]


class StepIssue(NamedTuple):
    """A problem a processor's `validate` (its SPEC, shared/processors/contract.py) found in one step."""

    path: tuple[str | int, ...]
    """Where in the step, e.g. ("destination", "merge_keys", 0)."""
    message: str
    offset: int | None = None
    """For a string setting (a SQL query): the character in it the problem is at, so the loader can name its line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryPolicy(_Strict):
    """When a step fails with a retryable error: how often to try and how long to wait between attempts."""

    max_attempts: int = Field(default=3, ge=1, le=20, description="Attempts in all, the first included.")
    backoff_seconds: float = Field(default=10.0, ge=0, le=600, description="Delay before the second attempt.")
    backoff_multiplier: float = Field(default=2.0, ge=1, le=10, description="Each further delay is this much longer.")
    max_backoff_seconds: float = Field(default=600.0, ge=0, le=3600, description="Upper bound of any one delay.")

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before `attempt` (2 = the first retry)."""
        if attempt <= 1:
            return 0.0
        return float(min(self.max_backoff_seconds, self.backoff_seconds * self.backoff_multiplier ** (attempt - 2)))


@lru_cache(maxsize=1024)
def _cron_is_valid(expression: str) -> bool:
    """croniter's check, once per expression (~0.2 ms each: it expands every field): every cold load of a scheduled
    pipeline asks, and thousands of tenants share a few schedules (bench P6)."""
    return bool(croniter.is_valid(expression))


class Schedule(_Strict):
    """When Cloud Scheduler starts the pipeline."""

    cron: str = Field(description="Unix cron, five fields: minute hour day-of-month month day-of-week.")
    timezone: str = Field(default="UTC", description="IANA time zone the cron is read in, e.g. Europe/Berlin.")
    misfire: Literal["skip", "catch_up"] = Field(
        default="skip", description="A missed tick is skipped, or run late (catch_up)."
    )

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 5:
            raise ValueError(f"cron {value!r} must have 5 fields (minute hour day month weekday), got {len(fields)}")
        if not _cron_is_valid(value):
            raise ValueError(f"cron {value!r} is not a valid cron expression")
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as UTC or Europe/Berlin)") from exc
        return value


class Parameter(_Strict):
    """A value given per run through the execute API (`parameters: {name: value}`), used in SQL as `@name`."""

    type: Literal["string", "int", "number", "bool", "date", "timestamp"] = "string"
    required: bool = Field(default=False, description="A run must give it (then it has no default).")
    default: Any = Field(default=None, description="Used when a run gives no value; must be of `type`.")
    description: str | None = None

    @field_validator("default")
    @classmethod
    def _default_matches_type(cls, value: Any, info: ValidationInfo) -> Any:
        """Stored in canonical form (a YAML date becomes "YYYY-MM-DD"), exactly as a run would give it."""
        if value is None or "type" not in info.data:
            return value
        if info.data.get("required"):
            raise ValueError("a required parameter has no default: drop `required` or `default`")
        try:
            return params.coerce("default", info.data["type"], value)
        except params.ParameterError as exc:
            raise ValueError(f"does not match type {info.data['type']}: {exc.reason}") from exc


class StepSpec(_Strict):
    """One step: a processor (`ps_type`) with its `source`, `destination` and `config`; runs once its dependencies
    have ended."""

    step_id: str = Field(pattern=IDENTIFIER.pattern, description="Unique in the pipeline; lower_snake_case.")
    name: str | None = None
    ps_type: str = Field(description="Processor type, e.g. bigquery.query, arrow.transform, debug.noop.")
    depends_on: list[str] = Field(default_factory=list, description="step_ids that must end before this step runs.")
    timeout_minutes: float = Field(default=30.0, gt=0, le=540)
    retries: RetryPolicy = Field(
        default_factory=RetryPolicy, description="Defaults to the pipeline's `retries`, else 3 attempts."
    )
    trigger: Literal["on_success", "on_failure", "always"] = Field(
        default="on_success", description="Run when the dependencies succeeded, when one failed, or always."
    )
    source: dict[str, Any] = Field(default_factory=dict, description="What the step reads (processor-specific).")
    destination: dict[str, Any] | None = Field(default=None, description="Where it writes (processor-specific).")
    config: dict[str, Any] = Field(default_factory=dict, description="Processor-specific settings.")


class PipelineSpec(_Strict):
    """A tenant's pipeline: `tenant_configs/{tenant_id}/pipelines/{pipeline_id}.yaml`."""

    pipeline_id: str = Field(pattern=IDENTIFIER.pattern, description="Must match the file name.")
    description: str = ""
    variables: dict[Name, VariableValue] = Field(
        default_factory=dict, description="Fixed values: usable as {name} in identifiers and as @name in SQL."
    )
    parameters: dict[Name, Parameter] = Field(default_factory=dict, description="Typed values given per run.")
    schedule: Schedule | None = None
    timeout_minutes: float = Field(default=120.0, gt=0, le=1440)
    retries: RetryPolicy | None = Field(default=None, description="Default retry policy for steps that set none.")
    steps: list[StepSpec] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _apply_default_retries(cls, data: Any) -> Any:
        """The pipeline's `retries` becomes the policy of every step that sets none (only if it is valid itself,
        so a bad pipeline policy is reported once, at its own line)."""
        if not isinstance(data, dict) or not isinstance(data.get("steps"), list) or data.get("retries") is None:
            return data
        try:
            policy = RetryPolicy.model_validate(data["retries"]).model_dump()
        except ValueError:
            return data
        steps = [
            {**step, "retries": dict(policy)} if isinstance(step, dict) and step.get("retries") is None else step
            for step in data["steps"]
        ]
        return {**data, "steps": steps}

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
