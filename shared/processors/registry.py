"""ps_type -> processor module.

Modules are imported on first use, so a function's cold start pays only for the processors it runs.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from functools import cache
from typing import cast

from shared.errors import TerminalError
from shared.pipelines.spec import StepIssue, StepSpec
from shared.pipelines.templating import ValidationScope
from shared.processors.base import Processor

_MODULES: dict[str, str] = {
    "bigquery.query": "shared.processors.bigquery_query",
    "debug.job": "shared.processors.debug_job",
    "debug.noop": "shared.processors.debug_noop",
    "notify.slack": "shared.processors.notify_slack",
    "notify.email": "shared.processors.notify_email",
    "arrow.transform": "shared.processors.arrow_transform",
    "file.load": "shared.processors.file_load",
    "http.extract": "shared.processors.http_extract",
    "quality.check": "shared.processors.quality_check",
}


def known_types() -> list[str]:
    return sorted(_MODULES)


def is_known_type(ps_type: str) -> bool:
    return ps_type in _MODULES


@cache
def get_processor(ps_type: str) -> Processor:
    module_name = _MODULES.get(ps_type)
    if module_name is None:
        raise TerminalError(f"unknown ps_type {ps_type!r}; known: {', '.join(known_types())}")
    module = importlib.import_module(module_name)
    return cast(Processor, module.PROCESSOR)


@cache
def runs_as_job(ps_type: str) -> bool:
    """Whether the step type is submitted as a job and polled (shared/processors/jobs.py), not run in one invocation."""
    from shared.processors.jobs import JobProcessor

    return is_known_type(ps_type) and isinstance(get_processor(ps_type), JobProcessor)


StepValidator = Callable[[StepSpec, ValidationScope], list[StepIssue]]


@cache
def get_validator(ps_type: str) -> StepValidator | None:
    """The processor module's `validate_step`, if it has one, called as `(step, scope)`.

    A module may define `validate_step(step)` or `validate_step(step, scope)` (scope: the pipeline's tenant,
    parameters and variables, for settings that use placeholders). It returns `(path within the step, message)`
    tuples, or `StepIssue`s that also carry a character offset into a string setting; the loader reports them at
    the right file:line:column.
    """
    module_name = _MODULES.get(ps_type)
    if module_name is None:
        return None
    validate = getattr(importlib.import_module(module_name), "validate_step", None)
    if validate is None:
        return None
    takes_scope = len(inspect.signature(validate).parameters) >= 2

    def call(step: StepSpec, scope: ValidationScope) -> list[StepIssue]:
        found = validate(step, scope) if takes_scope else validate(step)
        return [StepIssue(*issue) for issue in found]

    return call
