"""Bounded input (issue 13, attack class 6): YAML bombs are refused on the events, before any object is built, and
every pipeline cap of a plan holds at its limit and refuses one past it, at file:line:col naming the limit and plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from shared.catalog.loader import PipelineValidationError, load_pipeline, parse_pipeline
from shared.cli.main import cli
from shared.errors import BadRequest, PayloadTooLarge
from shared.lifecycle.local_tenants import config_tenants
from shared.notify.config import validate_all
from shared.pipelines.bounds import check_run_parameters, declared_plan, spec_problem
from shared.plans import DEFAULT_PLAN, PLANS, Plan
from shared.tenancy.sources import TenantSourcesError, parse_sources
from shared.yaml_source import UnsafeYaml, YamlBounds, compose_and_load, read_config_text
from tests.conftest import execute

BILLION_LAUGHS = """\
pipeline_id: lol
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
steps: [{step_id: x, ps_type: debug.noop, config: {rows: *i}}]
"""
PLAN_IDS = list(PLANS)


def _issues(text: str, plan: Plan | None = None, file: str = "p.yaml") -> list[str]:
    with pytest.raises(PipelineValidationError) as caught:
        parse_pipeline(text, file, plan=plan)
    return [str(issue) for issue in caught.value.issues]


def _pipeline(steps: list[str], header: str = "") -> str:
    return "pipeline_id: p\n" + header + "steps:\n" + "".join(f"  - {s}\n" for s in steps)


def _noop(i: int, deps: list[str] | None = None) -> str:
    return f"{{step_id: s{i}, ps_type: debug.noop{', depends_on: [' + ', '.join(deps) + ']' if deps else ''}}}"


# -- YAML bombs and shapes ------------------------------------------------------------------------------------------


def test_billion_laughs_is_refused_at_its_first_anchor_before_anything_is_built(monkeypatch: Any) -> None:
    def no_construction(*_: Any) -> Any:
        raise AssertionError("the document was constructed")

    monkeypatch.setattr(yaml.SafeLoader, "construct_document", no_construction)
    if hasattr(yaml, "CSafeLoader"):
        monkeypatch.setattr(yaml.CSafeLoader, "construct_document", no_construction)
    assert len(BILLION_LAUGHS) < 700
    assert _issues(BILLION_LAUGHS) == ["p.yaml:2:4: <document>: invalid YAML: YAML anchors are not accepted (&a): "
                                       "write the value out, or use `variables`"]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "at", "message"),
    [
        ("a: 1\nb: *nowhere\n", (1, 3), "aliases are not accepted (*nowhere)"),
        ("a: &x {k: v}\nb: {<<: *x}\n", (0, 3), "anchors are not accepted (&x)"),
        ("a: !!str &x v\n", (0, 3), "anchors are not accepted (&x)"),
        ("a: " + "[" * 65 + "]" * 65 + "\n", (0, 66), "nested more than 64 levels deep"),
        ("a: " + "1" * 5000 + "\n", (0, 3), "a number of 5,000 characters"),
        ("a: [" + ",".join(["1"] * 11) + "]\n", (0, 18), "more than 10 values in one file"),
    ],
)
def test_unsafe_shapes_are_refused_on_the_events(text: str, at: tuple[int, int], message: str) -> None:
    with pytest.raises(yaml.YAMLError) as caught:
        compose_and_load(text, YamlBounds(max_nodes=10 if "[1," in text else 100_000))
    mark = caught.value.problem_mark  # type: ignore[attr-defined]  # every refusal carries its position
    assert (mark.line, mark.column) == at and message in str(caught.value.problem)  # type: ignore[attr-defined]


def test_quoted_long_digits_and_ampersands_in_text_are_plain_strings() -> None:
    _, data = compose_and_load(f'a: "{"1" * 5000}"\nq: SELECT a & b, * FROM t\n')
    assert isinstance(data, dict) and data["q"] == "SELECT a & b, * FROM t" and len(data["a"]) == 5000


def test_a_file_over_the_byte_cap_is_refused_without_reading_it(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:
        handle.truncate(56 << 20)  # sparse: 56 MB that are never read
    with pytest.raises(UnsafeYaml, match="58,720,256 bytes; at most 1,048,576"):
        read_config_text(big)
    with pytest.raises(UnsafeYaml, match="at most 10 are accepted"):
        compose_and_load("a: 123456789\n", YamlBounds(max_bytes=10))


ALIAS_TENANT_YAML = "tenant_id: acme\nplan: &p starter\nnotifications:\n  channels: {}\n"


def test_tenant_yaml_with_an_alias_is_refused_by_every_reader(tmp_path: Path) -> None:
    (tmp_path / "acme").mkdir()
    path = tmp_path / "acme" / "tenant.yaml"
    path.write_text(ALIAS_TENANT_YAML)
    checked, issues = validate_all(tmp_path)
    assert checked == 1 and [str(i) for i in issues] == [
        f"{path}:2:7: <document>: invalid YAML: YAML anchors are not accepted (&p): write the value out, or use "
        "`variables`"
    ]
    with pytest.raises(TenantSourcesError) as caught:
        parse_sources(ALIAS_TENANT_YAML, str(path))
    assert str(caught.value.issues[0]).startswith(f"{path}:2:7: <document>: invalid YAML: YAML anchors")
    assert config_tenants(tmp_path) == {"acme": {}}  # onboarded with defaults, never expanded
    assert declared_plan(tmp_path, "acme").name == DEFAULT_PLAN


# -- per-plan caps ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PLAN_IDS)
def test_file_size_at_the_cap_is_accepted_and_one_byte_more_is_not(name: str) -> None:
    plan = PLANS[name]
    body = _pipeline([_noop(0)])
    limit = plan.pipelines.pipeline_bytes
    padded = body + "#" * (limit - len(body) - 1) + "\n"
    assert len(padded.encode()) == limit
    assert parse_pipeline(padded, "p.yaml", plan=plan).pipeline_id == "p"
    assert _issues(padded + "\n", plan) == [
        f"p.yaml:1:1: <document>: the file is {limit + 1:,} bytes; plan {name!r} allows at most {limit:,} per "
        "pipeline (pipeline_bytes)"
    ]


@pytest.mark.parametrize("name", PLAN_IDS)
def test_steps_at_the_cap_are_accepted_and_one_more_is_refused_at_that_step(name: str) -> None:
    plan = PLANS[name]
    limit = plan.pipelines.steps
    steps = [_noop(i) for i in range(limit)]
    assert len(parse_pipeline(_pipeline(steps), "p.yaml", plan=plan).steps) == limit
    issues = _issues(_pipeline([*steps, _noop(limit)]), plan)
    assert issues == [
        f"p.yaml:{limit + 3}:5: steps[{limit}]: {limit + 1:,} steps; plan {name!r} allows at most {limit} per "
        "pipeline (steps)"
    ]


@pytest.mark.parametrize("name", PLAN_IDS)
def test_fan_out_at_the_cap_is_accepted_and_one_more_dependant_is_refused(name: str) -> None:
    plan = PLANS[name]
    limit = plan.pipelines.fan_out
    steps = [_noop(0), *(_noop(i, ["s0"]) for i in range(1, limit + 1))]
    assert len(parse_pipeline(_pipeline(steps), "p.yaml", plan=plan).dependants()["s0"]) == limit
    issues = _issues(_pipeline([*steps, _noop(limit + 1, ["s0"])]), plan)
    line = limit + 4  # pipeline_id, steps:, s0, then the dependants
    assert len(issues) == 1 and issues[0].startswith(f"p.yaml:{line}:")
    assert (
        f"steps[{limit + 1}].depends_on[0]: {limit + 1} steps depend on 's0'; plan {name!r} allows at most"
        in (issues[0])
    )
    assert "(fan_out)" in issues[0]


@pytest.mark.parametrize("name", PLAN_IDS)
def test_fan_in_at_the_cap_is_accepted_and_one_more_dependency_is_refused(name: str) -> None:
    plan = PLANS[name]
    limit = plan.pipelines.fan_in
    roots = [_noop(i) for i in range(limit + 1)]
    names = [f"s{i}" for i in range(limit + 1)]
    ok = _pipeline([*roots[:limit], _noop(99999, names[:limit])])
    assert len(parse_pipeline(ok, "p.yaml", plan=plan).step("s99999").depends_on) == limit
    issues = _issues(_pipeline([*roots, _noop(99999, names)]), plan)
    assert (
        len(issues) == 1
        and f"steps[{limit + 1}].depends_on[{limit}]: {limit + 1} dependencies; plan {name!r}" in (issues[0])
    )


@pytest.mark.parametrize("name", PLAN_IDS)
def test_declared_parameters_at_the_cap_are_accepted_and_one_more_is_refused_at_its_key(name: str) -> None:
    plan = PLANS[name]
    limit = plan.pipelines.parameters
    header = "parameters:\n" + "".join(f"  p{i}: {{type: int}}\n" for i in range(limit))
    assert len(parse_pipeline(_pipeline([_noop(0)], header), "p.yaml", plan=plan).parameters) == limit
    issues = _issues(_pipeline([_noop(0)], header + f"  p{limit}: {{type: int}}\n"), plan)
    assert issues == [
        f"p.yaml:{limit + 3}:3: parameters.p{limit}: {limit + 1} parameters; plan {name!r} allows at most {limit} "
        "(parameters)"
    ]


def test_the_loader_takes_the_plan_from_tenant_yaml_and_revalidates_when_it_changes(tmp_path: Path) -> None:
    (tmp_path / "acme" / "pipelines").mkdir(parents=True)
    tenant_yaml = tmp_path / "acme" / "tenant.yaml"
    tenant_yaml.write_text("tenant_id: acme\nplan: free\n")
    path = tmp_path / "acme" / "pipelines" / "wide.yaml"
    path.write_text(_pipeline([_noop(i) for i in range(21)]).replace("pipeline_id: p", "pipeline_id: wide"))
    with pytest.raises(PipelineValidationError, match="plan 'free' allows at most 20 per pipeline"):
        load_pipeline(path)
    tenant_yaml.write_text("tenant_id: acme\nplan: professional\n# changed\n")
    assert len(load_pipeline(path).steps) == 21


def test_an_oversized_file_is_refused_by_the_loader_before_it_is_read(tmp_path: Path) -> None:
    (tmp_path / "acme" / "pipelines").mkdir(parents=True)
    path = tmp_path / "acme" / "pipelines" / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(56 << 20)
    with pytest.raises(PipelineValidationError) as caught:
        load_pipeline(path)
    assert [str(i) for i in caught.value.issues] == [
        f"{tmp_path.name}/acme/pipelines/huge.yaml:1:1: <document>: the file is 58,720,256 bytes; "
        "plan 'starter' allows at most 262,144 per pipeline "
        "(pipeline_bytes)"
    ]


def test_admission_checks_the_plan_of_record_too() -> None:
    spec = parse_pipeline(_pipeline([_noop(i) for i in range(21)]), "p.yaml", plan=PLANS["enterprise"])
    assert spec_problem(spec, 100, PLANS["enterprise"]) is None
    assert spec_problem(spec, 100, PLANS["free"]) == "21 steps; plan 'free' allows at most 20 per pipeline (steps)"
    assert "pipeline_bytes" in str(spec_problem(spec, 200_000, PLANS["free"]))


@pytest.mark.parametrize("name", PLAN_IDS)
def test_run_parameters_at_the_caps_pass_and_past_them_are_4xx_naming_the_field(name: str) -> None:
    plan = PLANS[name]
    limits = plan.pipelines
    check_run_parameters({f"p{i}": "x" for i in range(limits.parameters)}, plan)
    with pytest.raises(BadRequest) as many:
        check_run_parameters({f"p{i}": "x" for i in range(limits.parameters + 1)}, plan)
    assert many.value.details["field"] == "parameters" and many.value.details["plan"] == name
    check_run_parameters({"q": "é" * (limits.parameter_bytes // 2)}, plan)  # bytes, not characters
    for value in ("é" * (limits.parameter_bytes // 2) + "x", {"nested": "x" * limits.parameter_bytes}):
        with pytest.raises(PayloadTooLarge) as big:
            check_run_parameters({"q": value}, plan)
        assert big.value.status == 413 and big.value.details == {
            "field": "parameters.q",
            "limit": limits.parameter_bytes,
            "plan": name,
        }


# -- through the API and the CLI ---------------------------------------------------------------------------------------


def test_execute_refuses_a_bomb_and_oversized_parameters_with_4xx_json(runtime: Any) -> None:
    pipelines = Path(runtime.settings.config_dir) / "testco" / "pipelines"
    (pipelines / "lol.yaml").write_text(BILLION_LAUGHS)
    bomb = execute(runtime, "testco", "lol")
    assert bomb.status == 400 and bomb.body["details"]["field"] == "pipeline_id"
    assert any(
        ":2:4: <document>: invalid YAML: YAML anchors are not accepted" in i for i in bomb.body["details"]["issues"]
    )
    (pipelines / "takes_text.yaml").write_text(
        _pipeline([_noop(0)], "parameters:\n  note: {type: string}\n").replace(
            "pipeline_id: p", "pipeline_id: takes_text"
        )
    )
    limit = PLANS["starter"].pipelines.parameter_bytes
    assert execute(runtime, "testco", "takes_text", parameters={"note": "x" * limit}).status == 202
    big = execute(runtime, "testco", "takes_text", parameters={"note": "x" * (limit + 1)})
    assert big.status == 413 and big.body["error"] == "PAYLOAD_TOO_LARGE"
    assert big.body["details"] == {"field": "parameters.note", "limit": limit, "plan": "starter"}
    many = execute(runtime, "testco", "takes_text", parameters={f"p{i}": 1 for i in range(51)})
    assert many.status == 400 and many.body["details"]["field"] == "parameters"


def test_cli_validate_names_the_limit_and_the_plan(tmp_path: Path) -> None:
    (tmp_path / "acme" / "pipelines").mkdir(parents=True)
    (tmp_path / "acme" / "tenant.yaml").write_text("tenant_id: acme\nplan: free\n")
    path = tmp_path / "acme" / "pipelines" / "wide.yaml"
    path.write_text(_pipeline([_noop(i) for i in range(21)]).replace("pipeline_id: p", "pipeline_id: wide"))
    result = CliRunner().invoke(cli, ["pipelines", "validate", str(path)])
    assert result.exit_code == 1
    shown = f"{tmp_path.name}/acme/pipelines/wide.yaml:23:5: "
    assert shown + "steps[20]: 21 steps; plan 'free' allows at most 20 per pipeline (steps)" in result.output
