"""Typed step configuration shared by the data-plane processors: table references, column types, placeholders.

Each processor declares one pydantic model with `source`, `destination` and `config` sections mirroring the YAML, so
a validation error's location is the step's own key path (`source.path`, `config.checks[2].column`). The same model
checks a step at `pipelines validate` time (its SPEC's `validate`) and again when the step runs (`parse_step`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import pyarrow as pa
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.errors import TerminalError
from shared.pipelines.reserved import reserved_problem
from shared.pipelines.spec import IDENTIFIER, StepIssue, StepSpec
from shared.pipelines.sql_scope import TableScope, dataset_problem
from shared.pipelines.templating import path_fragment_problem
from shared.processors.base import StepContext

COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

WriteMode = Literal["append", "truncate"]


def _column(name: str) -> str:
    if not COLUMN.match(name):
        raise ValueError(f"{name!r} is not a column name (letters, digits and '_', not starting with a digit)")
    return name


def _identifier(name: str) -> str:
    if not IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a valid name (lower_snake_case, at most 63 characters)")
    return name


ColumnName = Annotated[str, AfterValidator(_column)]
Identifier = Annotated[str, AfterValidator(_identifier)]

# GoogleSQL type names (and their lower-case spellings) -> arrow. NUMERIC is BigQuery's DECIMAL(38, 9).
_TYPES: dict[str, pa.DataType] = {
    "STRING": pa.string(),
    "INT64": pa.int64(),
    "INTEGER": pa.int64(),
    "FLOAT64": pa.float64(),
    "FLOAT": pa.float64(),
    "NUMERIC": pa.decimal128(38, 9),
    "BOOL": pa.bool_(),
    "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    "DATETIME": pa.timestamp("us"),
    "BYTES": pa.binary(),
}


def arrow_type(name: str) -> pa.DataType:
    """A column type as written in YAML (`STRING`, `int64`, `numeric`, `timestamp` ...) -> its arrow type."""
    found = _TYPES.get(name.upper())
    if found is None:
        raise ValueError(f"unknown column type {name!r}; use one of {', '.join(sorted(_TYPES))}")
    return found


def _type_name(name: str) -> str:
    arrow_type(name)
    return name


ColumnTypeName = Annotated[str, AfterValidator(_type_name)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableRef(StrictModel):
    """A table in one of the tenant's own datasets: `{tenant_id}_{dataset}.{table}`."""

    dataset: Identifier = Field(description="Dataset name without the tenant prefix, e.g. `billing`.")
    table: Identifier
    _section: ClassVar[str] = "source"
    """Where the reference sits in the step, for messages; a source may read a reserved dataset, never write it."""

    def qualified(self, ctx: StepContext) -> str:
        """`{tenant_id}_{dataset}.{table}`, refused if the name is another tenant's dataset (`acme` + `eu_sales`
        would be tenant `acme_eu`'s `sales`) or, for a destination, a reserved one."""
        writing = self._section == "destination"
        dataset = ctx.dataset(self.dataset, f"{self._section}.dataset", writing=writing)
        scope = TableScope(ctx.tenant_id, other_tenants=ctx.other_tenants())
        problem = dataset_problem(dataset, scope)
        if problem:
            raise TerminalError(problem)
        if writing:
            return ctx.destination_table(dataset, self.table, f"{self._section}.table")
        return f"{dataset}.{self.table}"


class Destination(TableRef):
    write_mode: WriteMode = Field(default="truncate", description="truncate replaces the table, append adds rows.")
    _section: ClassVar[str] = "destination"

    @field_validator("dataset")
    @classmethod
    def _not_reserved(cls, dataset: str) -> str:
        problem = reserved_problem(dataset)  # any case: `Metadata` is the same DuckDB schema
        if problem:
            raise ValueError(problem)
        return dataset


M = TypeVar("M", bound=BaseModel)


def _sections(step: StepSpec) -> dict[str, Any]:
    return {"source": step.source, "destination": step.destination, "config": step.config}


def step_issues(model: type[BaseModel], step: StepSpec) -> list[StepIssue]:
    """Every problem pydantic finds in the step's sections, located by key path."""
    data = _sections(step)
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return [StepIssue(_yaml_path(data, tuple(err["loc"])), _message(err)) for err in exc.errors()]
    return []


def _yaml_path(data: Any, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """pydantic's error location as a key path in the YAML: union tags (`checks.2.not_null.columns`) are dropped,
    because they are not keys the user wrote."""
    out: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        if (
            isinstance(node, dict)
            and part not in node
            and (part in node.values() or (i + 1 < len(loc) and loc[i + 1] in node))
        ):
            continue  # a union member's name or tag (e.g. the check type), not a key the user wrote
        out.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(out)


def parse_step(model: type[M], step: StepSpec) -> M:
    """The typed config of a step about to run; a bad config is terminal (retrying cannot fix YAML)."""
    try:
        return model.model_validate(_sections(step))
    except ValidationError as exc:
        problems = "; ".join(f"{_path(tuple(err['loc']))}: {_message(err)}" for err in exc.errors())
        raise TerminalError(f"step {step.step_id}: invalid configuration: {problems}") from exc


def _message(err: Any) -> str:
    text = str(err["msg"])
    return text.removeprefix("Value error, ")


def _path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def render_path_template(template: str, ctx: StepContext) -> str:
    """Fill `{run_date}`, `{run_id}`, `{tenant_id}` and parameter/variable placeholders in a file path or URL.

    Values may not contain '/', so a parameter can never walk a path into another folder (`../../etc`)."""
    values: dict[str, Any] = {**ctx.variables, **ctx.parameters}
    values.update(run_date=ctx.run_date.isoformat(), run_id=ctx.run_id, tenant_id=ctx.tenant_id)

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise TerminalError(f"unknown placeholder {{{name}}}; known: {', '.join(sorted(values))}")
        problem = path_fragment_problem(values[name])
        if problem is not None:
            raise TerminalError(f"placeholder {{{name}}} = {problem}")
        return str(values[name])

    return _PLACEHOLDER.sub(sub, template)


def quote_column(name: str) -> str:
    """A column name as a GoogleSQL quoted identifier (the DuckDB adapter transpiles the backticks)."""
    return "`" + _column(name).replace("`", "") + "`"


def check_deadline(ctx: StepContext, step: StepSpec) -> None:
    """Stop streaming once the step's time is up (the engine has already recorded the timeout and moved on)."""
    if ctx.seconds_left() <= 0:
        raise TerminalError(f"step {step.step_id}: timed out while streaming")
