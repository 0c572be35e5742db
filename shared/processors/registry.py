"""ps_type -> the processor module that declares it (`SPEC`, shared/processors/contract.py).

Modules are imported on first use, so a function's cold start pays only for the processors it runs; each SPEC is
checked when its module is first imported, and `check_all()` imports and checks every one (tests, `cloudact pipelines
validate`, docs generation). A new step type is one file with its SPEC plus its line in `_MODULES` below.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import cache

from shared.errors import TerminalError
from shared.processors.base import Processor
from shared.processors.contract import ProcessorContractError, ProcessorSpec, StepValidator, spec_of

_MODULES: dict[str, str] = {
    "arrow.transform": "shared.processors.arrow_transform",
    "bigquery.query": "shared.processors.bigquery_query",
    "debug.job": "shared.processors.debug_job",
    "debug.noop": "shared.processors.debug_noop",
    "file.load": "shared.processors.file_load",
    "http.extract": "shared.processors.http_extract",
    "notify.email": "shared.processors.notify_steps:EMAIL_SPEC",
    "notify.slack": "shared.processors.notify_steps:SLACK_SPEC",
    "quality.check": "shared.processors.quality_check",
}


def known_types() -> list[str]:
    return sorted(_MODULES)


def is_known_type(ps_type: str) -> bool:
    return ps_type in _MODULES


@cache
def get_spec(ps_type: str) -> ProcessorSpec:
    """The step type's declaration, its module imported (and its SPEC checked) on first use."""
    entry = _MODULES.get(ps_type)
    if entry is None:
        raise TerminalError(f"unknown ps_type {ps_type!r}; known: {', '.join(known_types())}")
    return _load(ps_type, entry)


def get_processor(ps_type: str) -> Processor:
    return get_spec(ps_type).processor


@cache
def runs_as_job(ps_type: str) -> bool:
    """Whether the step type is submitted as a job and polled (shared/processors/jobs.py), not run in one invocation."""
    from shared.processors.jobs import JobProcessor

    return is_known_type(ps_type) and isinstance(get_processor(ps_type), JobProcessor)


def get_validator(ps_type: str) -> StepValidator:
    """The step type's own checks, called as `(step, scope)` by the loader."""
    return get_spec(ps_type).validate


def check_all(modules: Mapping[str, str] | None = None) -> list[ProcessorSpec]:
    """Import every processor module (default: the registry's) and check its SPEC; the specs in ps_type order.

    Raises ProcessorContractError naming every module that fails, not only the first."""
    found: list[ProcessorSpec] = []
    problems: list[str] = []
    for ps_type, entry in sorted((modules if modules is not None else _MODULES).items()):
        try:
            found.append(_load(ps_type, entry))
        except ProcessorContractError as exc:
            problems.append(str(exc))
        except ImportError as exc:
            problems.append(f"processor module {entry} (ps_type {ps_type!r}) does not import: {exc}")
    if problems:
        raise ProcessorContractError("\n".join(problems))
    return found


def _load(ps_type: str, entry: str) -> ProcessorSpec:
    module_name, _, attribute = entry.partition(":")
    return spec_of(ps_type, importlib.import_module(module_name), attribute or "SPEC")
