"""Reserved dataset names, checked on the name a step will really use: after `{placeholders}` are filled in, and
case-insensitively (`Metadata`, `METADATA`): DuckDB folds schema names to one, so on the embedded runtime they all are
`{tenant}_metadata`, and BigQuery must refuse them too so a pipeline means the same thing on both.

Placeholders in a dataset name stay allowed: a parameter may choose among the tenant's own datasets
(`dataset: "{region}_sales"`), which is why parameters exist, and a parameter has no enum that could prove it never
names a reserved dataset. Instead the name is checked wherever its value becomes known: at validation for variables
(bigquery.query's own check) and parameter defaults (`default_issues`, here), at admission for a run's values (400
naming `parameters.<name>`, `run_value_problem`), and at run time in `StepContext.dataset` whatever the path to it
(scheduled runs, re-runs of stored parameters).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from shared.pipelines.sql_tables import RESERVED_DATASETS
from shared.pipelines.templating import TemplateError, ValidationScope, placeholders, render

DATASET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,1023}")
"""A dataset name after the tenant prefix (use fullmatch): ASCII letters, digits and '_' only, so no space, dot,
quote or unicode look-alike can make two spellings of one dataset."""


def reserved_problem(name: str) -> str | None:
    """Why `name` (without the tenant prefix) is a reserved dataset, or None."""
    if name.strip().lower() in RESERVED_DATASETS:
        return f"{name!r} is reserved for run history: steps may read it, never write it"
    return None


RESERVED_TABLE_PREFIX = "_cloudact"
"""The platform's own tables inside a tenant's datasets (staging tables, the append log) start with this."""


def reserved_table_problem(name: str) -> str | None:
    """Why a step may not write table `name` (after rendering): the platform's own tables, in any case."""
    if name.strip().lower().startswith(RESERVED_TABLE_PREFIX):
        return f"{name[:80]!r}: table names starting with {RESERVED_TABLE_PREFIX} are reserved for the platform"
    return None


def dataset_name_problem(name: str, *, writing: bool = True) -> str | None:
    """Why a step may not use (read, or when `writing` write into) dataset `name` (without the tenant prefix)."""
    if not DATASET_NAME.fullmatch(name):
        return f"{name[:80]!r} is not a dataset name: letters, digits and '_', not starting with a digit"
    return reserved_problem(name) if writing else None


def run_value_problem(
    destination: Mapping[str, Any] | None, values: Mapping[str, Any], parameters: Collection[str]
) -> tuple[str, str] | None:
    """(parameter, message) when a run's values make a step's `destination.dataset` a reserved dataset; the
    parameter is the first of `parameters` the name uses (None when it uses none: variables are validated)."""
    template = destination.get("dataset") if destination else None
    if not isinstance(template, str) or "{" not in template:
        return None
    used = [name for name, _ in placeholders(template) if name in parameters]
    if not used:
        return None
    try:
        rendered = render(template, values).text
    except TemplateError:
        return None  # a value that cannot be part of a name is refused by its own check
    problem = reserved_problem(rendered)
    return (used[0], f"makes destination.dataset {template!r} the dataset {problem}") if problem else None


def default_issues(destination: Any, scope: ValidationScope) -> list[tuple[tuple[str, str], str, int]]:
    """(path, message, offset) when parameter defaults make `destination.dataset` reserved: checked here because the
    step validators render parameters as stand-ins (the run may give another value), yet a run that gives none
    would write into the reserved dataset."""
    template = destination.get("dataset") if isinstance(destination, Mapping) else None
    if not isinstance(template, str) or "{" not in template:
        return []
    defaults = {k: v for k, v in scope.parameter_defaults.items() if k in scope.parameter_types}
    if not defaults:
        return []
    try:
        with_defaults = render(template, {**scope.values(), **defaults}).text
        without = render(template, scope.values()).text
    except TemplateError:
        return []  # reported by the step's own checks
    problem = reserved_problem(with_defaults)
    if problem is None or reserved_problem(without) is not None:
        return []  # not reserved, or reserved whatever the run gives (the step's own check reports that)
    name, offset = next((n, o) for n, o in placeholders(template) if n in defaults)
    return [(("destination", "dataset"), f"with the default of parameter {name!r} the dataset {problem}", offset)]
