"""The typed checks of `quality.check` (one pydantic model per check type, selected by `type`)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from shared.processors.step_config import ColumnName, StrictModel, TableRef

Severity = Literal["error", "warn"]
CHECK_NAME = re.compile(r"^[a-z][a-z0-9_]{0,127}$")


class _Check(StrictModel):
    name: str | None = Field(default=None, description="Unique in the step; default: <type>_<column>.")
    severity: Severity = Field(default="error", description="error fails the step; warn is only recorded.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not CHECK_NAME.match(value):
            raise ValueError(f"check name {value!r} must be lower_snake_case")
        return value

    def column_name(self) -> str | None:
        return getattr(self, "column", None) or ",".join(getattr(self, "columns", []) or []) or None

    def check_name(self) -> str:
        if self.name:
            return self.name
        kind = getattr(self, "type", "check")
        column = self.column_name()
        return f"{kind}_{column.replace(',', '_')}" if column else str(kind)


class NotNull(_Check):
    type: Literal["not_null"]
    columns: list[ColumnName] = Field(min_length=1)


class Unique(_Check):
    type: Literal["unique"]
    columns: list[ColumnName] = Field(min_length=1, description="Together these columns identify a row.")


class AcceptedValues(_Check):
    type: Literal["accepted_values"]
    column: ColumnName
    values: list[str | int | float | bool] = Field(min_length=1)

    @field_validator("values")
    @classmethod
    def _one_type(cls, value: list[Any]) -> list[Any]:
        if len({type(v) for v in value}) > 1:
            raise ValueError("all accepted values must have the same type")
        return value


class Range(_Check):
    type: Literal["range"]
    column: ColumnName
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Range:
        if self.min is None and self.max is None:
            raise ValueError("a range check needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class Regex(_Check):
    type: Literal["regex"]
    column: ColumnName
    pattern: str = Field(min_length=1, description="Must match somewhere in the value (anchor with ^...$).")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from exc
        return value


class RowCount(_Check):
    type: Literal["row_count"]
    min: int | None = Field(default=1, ge=0)
    max: int | None = Field(default=None, ge=0)


class Freshness(_Check):
    type: Literal["freshness"]
    column: ColumnName = Field(description="A DATE or TIMESTAMP column; its newest value is checked.")
    max_age_hours: float = Field(gt=0)
    reference: Literal["now", "run_date"] = Field(
        default="now", description="Age measured from now, or from the end of the run date (reruns of old days)."
    )


class CustomSql(_Check):
    type: Literal["custom_sql"]
    sql: str = Field(
        min_length=1, description="A SELECT returning the failing rows; same scope rules as bigquery.query"
    )
    max_failures: int = Field(default=0, ge=0)


Check = Annotated[
    NotNull | Unique | AcceptedValues | Range | Regex | RowCount | Freshness | CustomSql,
    Field(discriminator="type"),
]


class QualitySettings(StrictModel):
    checks: list[Check] = Field(min_length=1)

    @field_validator("checks")
    @classmethod
    def _unique_names(cls, checks: list[Any]) -> list[Any]:
        names = [c.check_name() for c in checks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"check names must be unique in the step (set `name`): {', '.join(duplicates)}")
        return checks


class QualityStep(StrictModel):
    source: TableRef | None = None
    destination: None = Field(default=None, description="Results always go to {tenant}_metadata.dq_results.")
    config: QualitySettings

    @field_validator("source", mode="before")
    @classmethod
    def _no_source(cls, value: Any) -> Any:
        return None if value == {} else value  # a step without `source:` has an empty mapping

    @model_validator(mode="after")
    def _needs_table(self) -> QualityStep:
        if self.source is None and any(not isinstance(c, CustomSql) for c in self.config.checks):
            raise ValueError("source {dataset, table} is required unless every check is custom_sql")
        return self
