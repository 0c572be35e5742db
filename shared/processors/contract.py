"""The processor contract: what a step type's module declares (`SPEC`), and the check that refuses a malformed one.

A step type is one module in shared/processors exporting `SPEC = ProcessorSpec(...)`, plus its line in
`registry._MODULES`. The registry imports a module only when its type is first used (a function's cold start pays
for the processors it runs, not all nine) and checks that one SPEC then; `registry.check_all()` imports and checks
every one, and runs in the unit tests, at `cloudact pipelines validate` and when docs/ are generated, so a module
with a missing or malformed SPEC is named long before a run reaches it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from shared.errors import TerminalError
from shared.pipelines.spec import StepIssue, StepSpec
from shared.pipelines.templating import ValidationScope
from shared.processors.base import Processor

StepValidator = Callable[[StepSpec, ValidationScope], list[StepIssue]]
"""A step type's own checks of one step at `pipelines validate` time. `scope` is the pipeline's tenant, declared
parameters and variables (for settings with placeholders); each issue names its key path inside the step (and, for a
string setting, the character offset) so the loader reports it at the right file:line:column."""

SECTIONS = ("source", "destination", "config")
_JOB_METHODS = ("submit", "poll", "cancel")


@dataclass(frozen=True)
class ProcessorSpec:
    """One step type, as the registry, the loader, the engine, the JSON Schema and docs/steps.md see it."""

    ps_type: str
    """The `ps_type` of the YAML, e.g. `file.load`; must equal the registry key it is listed under."""
    summary: str
    """One line: what the step does (the reference's intro under `## <ps_type>`)."""
    processor: Processor
    """Runs the step; a step that runs as a job elsewhere implements `jobs.JobProcessor` (submit, poll, cancel)."""
    validate: StepValidator
    config_models: Mapping[str, type[BaseModel]] = field(default_factory=dict)
    """The pydantic model of each settings section the step takes (`source` / `destination` / `config`): the JSON
    Schema and the reference render them field by field. Empty for a type whose settings are checked by hand."""
    settings_doc: str = ""
    """For a type without `config_models`: its settings as plain text, shown in the reference instead of tables."""


class ProcessorContractError(TerminalError):
    """A processor module does not declare a well-formed SPEC: a programming error no retry can fix."""


def spec_of(ps_type: str, module: ModuleType, attribute: str = "SPEC") -> ProcessorSpec:
    """The module's SPEC if it keeps the contract, else ProcessorContractError naming the module and every problem."""
    spec = getattr(module, attribute, None)
    problems = spec_problems(ps_type, spec, attribute)
    if problems:
        raise ProcessorContractError(
            f"processor module {module.__name__} (ps_type {ps_type!r}) breaks the processor contract "
            f"(shared/processors/contract.py): {'; '.join(problems)}"
        )
    assert isinstance(spec, ProcessorSpec)
    return spec


def spec_problems(ps_type: str, spec: Any, attribute: str = "SPEC") -> list[str]:
    """What is wrong with `spec` as the declaration of `ps_type`, every problem at once (empty: it is well-formed)."""
    if spec is None:
        return [
            f"it has no {attribute}: declare `{attribute} = ProcessorSpec(ps_type=..., summary=..., processor=..., "
            "validate=...)`"
        ]
    if not isinstance(spec, ProcessorSpec):
        return [f"{attribute} is a {type(spec).__name__}, not a ProcessorSpec"]
    problems: list[str] = []
    if spec.ps_type != ps_type:
        problems.append(f"SPEC.ps_type is {spec.ps_type!r} but the registry lists the module as {ps_type!r}")
    if not isinstance(spec.summary, str) or not spec.summary.strip() or "\n" in spec.summary.strip():
        problems.append("SPEC.summary must be one non-empty line")
    problems += _validate_problems(spec.validate)
    problems += _processor_problems(spec.processor)
    for section, model in dict(spec.config_models).items():
        if section not in SECTIONS:
            problems.append(f"SPEC.config_models has {section!r}; sections are {', '.join(SECTIONS)}")
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            problems.append(f"SPEC.config_models[{section!r}] is {model!r}, not a pydantic model class")
    if not spec.config_models and not spec.settings_doc.strip():
        problems.append("SPEC needs config_models (pydantic models of its settings) or settings_doc (plain text)")
    return problems


def _validate_problems(validate: Any) -> list[str]:
    if not callable(validate):
        return [f"SPEC.validate is {validate!r}, not a function"]
    try:
        inspect.signature(validate).bind(None, None)
    except TypeError:
        return ["SPEC.validate must take (step, scope) and return a list of StepIssue"]
    except ValueError:  # a builtin without a signature: nothing to check
        pass
    return []


def _processor_problems(processor: Any) -> list[str]:
    if not callable(getattr(processor, "run", None)):
        return [f"SPEC.processor ({type(processor).__name__}) has no run(step, ctx) method"]
    present = [name for name in _JOB_METHODS if callable(getattr(processor, name, None))]
    if present and len(present) < len(_JOB_METHODS):
        missing = [name for name in _JOB_METHODS if name not in present]
        return [
            f"SPEC.processor ({type(processor).__name__}) implements {', '.join(present)} but not "
            f"{', '.join(missing)}: a job processor implements all of {', '.join(_JOB_METHODS)} "
            "(shared/processors/jobs.py)"
        ]
    return []


def settings_doc(module_doc: str | None) -> str:
    """A module docstring without its first paragraph (the summary): the settings text of a type without models."""
    rest = inspect.cleandoc(module_doc or "").split("\n\n", 1)
    return rest[1].strip() if len(rest) > 1 else ""
