"""The processor contract (shared/processors/contract.py): every registered step type declares a well-formed SPEC,
and a module that does not is refused by `registry.check_all()` with a message naming the module and each problem.

The malformed modules are throwaway files in the test's own folder (imported from there), never in shared/."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.errors import TerminalError
from shared.processors import registry
from shared.processors.contract import ProcessorContractError, ProcessorSpec
from shared.processors.jobs import JobProcessor


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("throwaway_")]:
        del sys.modules[name]


def _module(folder: Path, name: str, body: str) -> str:
    (folder / f"{name}.py").write_text(textwrap.dedent(body))
    return name


GOOD = """
    from shared.processors.base import StepResult
    from shared.processors.contract import ProcessorSpec

    class Noop:
        def run(self, step, ctx):
            return StepResult()

    SPEC = ProcessorSpec(
        ps_type="x.good", summary="does nothing.", processor=Noop(), validate=lambda step, scope: [],
        settings_doc="config: none",
    )
"""


def test_every_registered_step_type_keeps_the_contract() -> None:
    specs = registry.check_all()
    assert [s.ps_type for s in specs] == registry.known_types()
    assert all(isinstance(s, ProcessorSpec) for s in specs)
    jobs = sorted(s.ps_type for s in specs if isinstance(s.processor, JobProcessor))
    assert jobs == ["bigquery.query", "debug.job"]
    assert [t for t in registry.known_types() if registry.runs_as_job(t)] == jobs
    # notify.slack and notify.email: one processor class, parameterised by the channel kind
    slack, email = registry.get_processor("notify.slack"), registry.get_processor("notify.email")
    assert type(slack) is type(email)
    assert registry.get_validator("notify.slack") is registry.get_validator("notify.email")


def test_a_well_formed_throwaway_module_passes(module_dir: Path) -> None:
    (spec,) = registry.check_all({"x.good": _module(module_dir, "throwaway_good", GOOD)})
    assert spec.ps_type == "x.good" and spec.summary == "does nothing."


def test_a_module_without_a_spec_is_refused_naming_it(module_dir: Path) -> None:
    name = _module(module_dir, "throwaway_bare", "PROCESSOR = object()\n")
    with pytest.raises(ProcessorContractError) as caught:
        registry.check_all({"x.bare": name})
    message = str(caught.value)
    assert message.startswith("processor module throwaway_bare (ps_type 'x.bare') breaks the processor contract")
    assert "it has no SPEC: declare `SPEC = ProcessorSpec(" in message
    assert isinstance(caught.value, TerminalError)  # a run that reaches it fails the step at once: retries cannot help


def test_every_problem_of_a_malformed_spec_is_named_at_once(module_dir: Path) -> None:
    name = _module(
        module_dir,
        "throwaway_bad",
        """
        from shared.processors.contract import ProcessorSpec

        class HalfAJob:  # submits and polls, but cannot be cancelled
            def run(self, step, ctx): ...
            def submit(self, step, ctx, job_id): ...
            def poll(self, step, ctx, job_id): ...

        def validate_step(step):  # the old one-argument form
            return []

        SPEC = ProcessorSpec(
            ps_type="x.other", summary="two\\nlines", processor=HalfAJob(), validate=validate_step,
            config_models={"source": dict, "options": dict},
        )
        """,
    )
    with pytest.raises(ProcessorContractError) as caught:
        registry.check_all({"x.bad": name})
    message = str(caught.value)
    for problem in (
        "SPEC.ps_type is 'x.other' but the registry lists the module as 'x.bad'",
        "SPEC.summary must be one non-empty line",
        "SPEC.validate must take (step, scope) and return a list of StepIssue",
        "SPEC.processor (HalfAJob) implements submit, poll but not cancel",
        "SPEC.config_models['source'] is <class 'dict'>, not a pydantic model class",
        "SPEC.config_models has 'options'; sections are source, destination, config",
    ):
        assert problem in message, (problem, message)


def test_check_all_names_every_broken_module_not_only_the_first(module_dir: Path) -> None:
    modules = {
        "x.good": _module(module_dir, "throwaway_fine", GOOD),
        "x.none": _module(module_dir, "throwaway_none", "SPEC = None\n"),
        "x.wrong": _module(module_dir, "throwaway_wrong", "SPEC = {'ps_type': 'x.wrong'}\n"),
        "x.gone": "throwaway_missing_module",
    }
    with pytest.raises(ProcessorContractError) as caught:
        registry.check_all(modules)
    lines = str(caught.value).splitlines()
    assert len(lines) == 3
    assert "throwaway_missing_module (ps_type 'x.gone') does not import" in lines[0]
    assert "throwaway_none (ps_type 'x.none')" in lines[1] and "it has no SPEC" in lines[1]
    assert "throwaway_wrong (ps_type 'x.wrong')" in lines[2] and "SPEC is a dict, not a ProcessorSpec" in lines[2]


def test_one_module_may_declare_several_types_by_name(module_dir: Path) -> None:
    name = _module(module_dir, "throwaway_pair", GOOD + "\n    OTHER = SPEC\n")
    (spec,) = registry.check_all({"x.good": f"{name}:OTHER"})
    assert spec.ps_type == "x.good"
    with pytest.raises(ProcessorContractError, match="it has no MISSING"):
        registry.check_all({"x.good": f"{name}:MISSING"})


def test_an_unknown_type_is_a_clear_terminal_error() -> None:
    with pytest.raises(TerminalError, match=r"unknown ps_type 'no.such'; known: arrow.transform, bigquery.query"):
        registry.get_spec("no.such")
