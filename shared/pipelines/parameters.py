"""Typed pipeline parameters: declared in the YAML, given per run through the execute API, coerced in one place.

Values travel in two forms:
- *canonical* (JSON-native): what the run document stores and messages carry. `date` is `"YYYY-MM-DD"`, `timestamp`
  is ISO 8601 in UTC (`"2026-11-01T06:00:00+00:00"`), `number` is a float, `int` an int, `bool` a bool.
- *typed* (Python): what a step gets in `StepContext.parameters`, so `@name` binds as a DATE, TIMESTAMP, INT64, ...
  query parameter instead of a STRING.

`run_date` is built in: every run has it (the day the run is for), and a run may override it as a `date`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal

from shared.errors import BadRequest, TerminalError

if TYPE_CHECKING:
    from shared.pipelines.spec import PipelineSpec

ParameterType = Literal["string", "int", "number", "bool", "date", "timestamp"]
PARAMETER_TYPES: tuple[str, ...] = ("string", "int", "number", "bool", "date", "timestamp")
BUILTIN_NAMES = frozenset({"tenant_id", "run_id", "run_date", "pipeline_id", "project"})
"""Names every run defines; a pipeline may not declare a parameter or variable with one of them."""
RUN_DATE = "run_date"
MAX_STRING_LENGTH = 4096

_INT_TEXT = re.compile(r"^[+-]?\d{1,18}$")
_DATE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


class ParameterError(TerminalError):
    """A parameter value that cannot be used; `name` is the parameter it is about."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"parameter {name!r}: {message}")
        self.name = name
        self.reason = message


def coerce(name: str, ptype: str, value: Any) -> Any:
    """A value as the canonical JSON-native form of `ptype`; ParameterError if it is not one.

    Lenient where a caller cannot help the JSON type (a CLI `--param n=5` arrives as int 5 even for a string, a query
    string as "5" for an int) but never lossy: 2.5 is not an int, "yes please" is not a bool.
    """
    if value is None:
        raise ParameterError(name, f"null is not a {ptype}")
    if ptype == "string":
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ParameterError(name, f"expected a string, got {_kind(value)}")
        text = str(value)
        if len(text) > MAX_STRING_LENGTH:
            raise ParameterError(name, f"longer than {MAX_STRING_LENGTH} characters")
        return text
    if ptype == "int":
        return _as_int(name, value)
    if ptype == "number":
        return _as_number(name, value)
    if ptype == "bool":
        return _as_bool(name, value)
    if ptype == "date":
        return _as_date(name, value).isoformat()
    if ptype == "timestamp":
        return _as_timestamp(name, value).isoformat()
    raise ParameterError(name, f"unknown parameter type {ptype!r} (one of {', '.join(PARAMETER_TYPES)})")


def typed(ptype: str, canonical: Any) -> Any:
    """Canonical value -> the Python value bound as a query parameter (DATE, TIMESTAMP, ...)."""
    if ptype == "date":
        return date.fromisoformat(str(canonical))
    if ptype == "timestamp":
        return datetime.fromisoformat(str(canonical))
    return canonical


def resolve(declared: Mapping[str, Any], given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run's parameters in canonical form: given values coerced, defaults filled in, required ones checked.

    `declared` maps names to objects with `type`, `required` and `default` (the spec's `Parameter`). Raises
    ParameterError naming the first bad parameter (in a stable order: unknown, then declaration order).
    """
    given = dict(given or {})
    for name in sorted(given):
        if name != RUN_DATE and name not in declared:
            known = ", ".join(sorted(declared)) or "none declared"
            raise ParameterError(name, f"unknown parameter (this pipeline takes: {known}; and run_date)")
    out: dict[str, Any] = {}
    if RUN_DATE in given:
        out[RUN_DATE] = coerce(RUN_DATE, "date", given[RUN_DATE])
    for name, param in declared.items():
        if name in given:
            out[name] = coerce(name, param.type, given[name])
        elif param.default is not None:
            out[name] = coerce(name, param.type, param.default)
        elif param.required:
            raise ParameterError(name, "is required")
    return out


def typed_values(declared: Mapping[str, Any], canonical: Mapping[str, Any] | None) -> dict[str, Any]:
    """Canonical run parameters -> typed Python values (undeclared names other than run_date are dropped)."""
    out: dict[str, Any] = {}
    for name, value in (canonical or {}).items():
        if name == RUN_DATE:
            out[name] = typed("date", value)
        elif name in declared and value is not None:
            out[name] = typed(declared[name].type, value)
    return out


def to_bad_request(exc: ParameterError) -> BadRequest:
    """The HTTP face of a bad parameter: 400 naming `parameters.<name>`."""
    field = f"parameters.{exc.name}"
    return BadRequest(f"{field}: {exc.reason}", {"field": field})


def resolve_run_parameters(spec: PipelineSpec, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """A run's parameters for `spec` in canonical form (ParameterError naming the parameter otherwise).

    A parameter some step uses as a `{name}` placeholder must also be usable where it is pasted: in a table name
    (an identifier fragment, so a value like `x; DROP TABLE y` is refused) or in a file path / URL (no '/'), and is
    refused here, before the run is even queued, naming the step and key that use it.
    """
    from shared.pipelines.reserved import run_value_problem

    canonical = resolve(spec.parameters, given)
    for name, where in _placeholder_uses(spec):
        if canonical.get(name) is None:
            continue
        problem = _use_problem(name, where, typed(spec.parameters[name].type, canonical[name]))
        if problem is not None:
            raise ParameterError(name, problem)
    values = {**spec.variables, **typed_values(spec.parameters, canonical)}
    for step in spec.steps:  # ds=metadata: refused before the run is queued (and again when the step runs)
        found = run_value_problem(step.destination, values, spec.parameters)
        if found is not None:
            raise ParameterError(found[0], f"steps.{step.step_id}: {found[1]}")
    return canonical


def _placeholder_uses(spec: PipelineSpec) -> list[tuple[str, tuple[str | int, ...]]]:
    """(parameter, key path such as ("steps", "load", "source", "path")) for each placeholder naming a parameter."""
    from shared.pipelines.templating import placeholder_locations

    uses: list[tuple[str, tuple[str | int, ...]]] = []
    for step in spec.steps:
        for section, value in (("source", step.source), ("destination", step.destination or {})):
            for name, where in placeholder_locations(value, ("steps", step.step_id, section)):
                if name in spec.parameters:
                    uses.append((name, where))
    return uses


def _use_problem(name: str, where: tuple[str | int, ...], value: Any) -> str | None:
    """Why `value` cannot stand for {name} at `where`, in words that say where it is used, or None."""
    from shared.pipelines.templating import PATH_KEYS, TemplateError, identifier_fragment, path_fragment_problem

    location = ".".join(str(part) for part in where)
    if where[2] == "source" and len(where) > 3 and where[3] in PATH_KEYS:
        problem = path_fragment_problem(value)
        return None if problem is None else f"is used in a file path or URL ({location}) as {{{name}}}: {problem}"
    try:
        identifier_fragment(name, value)
    except TemplateError as exc:
        return f"is used in a table name ({location}) as {{{name}}}: {exc}"
    return None


def validate_run_parameters(spec: PipelineSpec, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """Admission's check: the canonical parameters, or BadRequest (400) naming `parameters.<name>`."""
    try:
        return resolve_run_parameters(spec, given)
    except ParameterError as exc:
        raise to_bad_request(exc) from exc


# -- coercions ---------------------------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    return {bool: "a bool", int: "an int", float: "a number", str: "a string", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__
    )


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ParameterError(name, "expected an int, got a bool")
    if isinstance(value, int):
        result = value
    elif isinstance(value, float) and value.is_integer():
        result = int(value)
    elif isinstance(value, str) and _INT_TEXT.match(value.strip()):
        result = int(value.strip())
    else:
        raise ParameterError(name, f"expected an int, got {_kind(value)} {_short(value)}")
    if not -(2**63) <= result < 2**63:
        raise ParameterError(name, "out of the INT64 range")
    return result


def _as_number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ParameterError(name, "expected a number, got a bool")
    try:
        result = float(value) if isinstance(value, int | float | str) else math.nan
    except ValueError:
        result = math.nan
    if not math.isfinite(result):
        raise ParameterError(name, f"expected a finite number, got {_kind(value)} {_short(value)}")
    return result


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, str | int) else ""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ParameterError(name, f"expected a bool (true/false), got {_kind(value)} {_short(value)}")


def _as_date(name: str, value: Any) -> date:
    if isinstance(value, datetime):
        raise ParameterError(name, "expected a date (YYYY-MM-DD), got a timestamp")
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _DATE_TEXT.match(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError as exc:
            raise ParameterError(name, f"not a calendar date: {value!r}") from exc
    raise ParameterError(name, f"expected a date (YYYY-MM-DD), got {_kind(value)} {_short(value)}")


def _as_timestamp(name: str, value: Any) -> datetime:
    """ISO 8601; no offset means UTC (BigQuery's TIMESTAMP rule). A bare date is midnight UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and 10 <= len(value.strip()) <= 40:
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise ParameterError(name, f"expected an ISO 8601 timestamp, got {value!r}") from exc
    else:
        raise ParameterError(name, f"expected an ISO 8601 timestamp, got {_kind(value)} {_short(value)}")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
