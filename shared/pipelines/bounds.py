"""How big a pipeline and a run's parameters may be, per plan (shared.plans.PipelineLimits).

Every cap is checked before the work it bounds: the file size before the file is read, the YAML's nodes and nesting
before any object is built (shared.yaml_source), the step count and fan-out/fan-in before the steps are validated one
by one (each query is parsed), the parameters before a run is queued.

Which plan: a pipeline file is checked against the plan its tenant.yaml names (`plan:`), because that is what
`cloudact pipelines validate` can know without the platform's state. Admission checks the spec and the parameters
again against the tenant's plan of record (with its overrides), so editing tenant.yaml never buys bigger pipelines.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from shared.errors import BadRequest, PayloadTooLarge
from shared.pipelines.spec import PipelineSpec
from shared.plans import DEFAULT_PLAN, PLANS, Plan
from shared.yaml_source import YamlBounds, YamlPath, load_checked, read_config_text

BoundIssue = tuple[YamlPath, str, bool]
"""(key path in the pipeline, message, whether the position is the key itself rather than its value)."""


def yaml_bounds(plan: Plan) -> YamlBounds:
    return YamlBounds(max_bytes=plan.pipelines.pipeline_bytes)


def size_problem(size: int, plan: Plan) -> str | None:
    limit = plan.pipelines.pipeline_bytes
    if size <= limit:
        return None
    return f"the file is {size:,} bytes; plan {plan.name!r} allows at most {limit:,} per pipeline (pipeline_bytes)"


def document_issues(data: Mapping[str, Any], plan: Plan) -> list[BoundIssue]:
    """Steps, fan-out, fan-in and declared parameters over the plan's caps, each at the first entry past the cap.

    Works on the plain data (not the model) so it runs before the costly per-step checks, and tolerates any shape:
    what is not a list of steps is the model's to report."""
    limits = plan.pipelines
    issues: list[BoundIssue] = []
    steps = data.get("steps")
    steps = steps if isinstance(steps, list) else []
    if len(steps) > limits.steps:  # alone: counting fan-out over thousands of steps is work the cap saves
        message = f"{len(steps):,} steps; plan {plan.name!r} allows at most {limits.steps} per pipeline (steps)"
        return [(("steps", limits.steps), message, False)]
    dependants: dict[str, int] = {}
    for i, step in enumerate(steps):
        deps = step.get("depends_on") if isinstance(step, dict) else None
        if not isinstance(deps, list):
            continue
        if len(deps) > limits.fan_in:
            issues.append(
                (
                    ("steps", i, "depends_on", limits.fan_in),
                    f"{len(deps)} dependencies; plan {plan.name!r} allows at most {limits.fan_in} per step (fan_in)",
                    False,
                )
            )
        for j, dep in enumerate(deps):
            if not isinstance(dep, str):
                continue
            dependants[dep] = dependants.get(dep, 0) + 1
            if dependants[dep] == limits.fan_out + 1:
                total = sum(1 for s in steps if isinstance(s, dict) and dep in _as_list(s.get("depends_on")))
                issues.append(
                    (
                        ("steps", i, "depends_on", j),
                        f"{total} steps depend on {dep!r}; plan {plan.name!r} allows at most {limits.fan_out} "
                        "steps depending on one step (fan_out): group them behind fewer steps",
                        False,
                    )
                )
    parameters = data.get("parameters")
    if isinstance(parameters, dict) and len(parameters) > limits.parameters:
        past = list(parameters)[limits.parameters]
        issues.append(
            (
                ("parameters", past),
                f"{len(parameters)} parameters; plan {plan.name!r} allows at most {limits.parameters} (parameters)",
                True,
            )
        )
    return issues


def spec_problem(spec: PipelineSpec, size: int, plan: Plan) -> str | None:
    """The first cap of `plan` that an already loaded pipeline breaks (admission, with the plan of record)."""
    problem = size_problem(size, plan)
    if problem:
        return problem
    issues = document_issues(spec.model_dump(include={"steps", "parameters"}), plan)
    return issues[0][1] if issues else None


def check_run_parameters(given: Mapping[str, Any], plan: Plan) -> None:
    """The values a run request gives, before they are coerced: at most `parameters` of them, each at most
    `parameter_bytes` (413 naming `parameters.<name>`; too many is a 400 naming `parameters`)."""
    limits = plan.pipelines
    if len(given) > limits.parameters:
        raise BadRequest(
            f"parameters: {len(given)} given; plan {plan.name!r} allows at most {limits.parameters} per run",
            {"field": "parameters", "limit": limits.parameters, "plan": plan.name},
        )
    for name, value in given.items():
        size = _value_bytes(value)
        if size > limits.parameter_bytes:
            field = f"parameters.{name}"[:200]
            raise PayloadTooLarge(
                f"{field}: the value is {size:,} bytes; plan {plan.name!r} allows at most "
                f"{limits.parameter_bytes:,} per parameter value",
                {"field": field, "limit": limits.parameter_bytes, "plan": plan.name},
            )


# -- the plan a tenant.yaml names -----------------------------------------------------------------------------------


def declared_plan(config_dir: Path, tenant_id: str | None, mtime_ns: int | None = None) -> Plan:
    """The plan `{config_dir}/{tenant_id}/tenant.yaml` names; the default plan when there is no such file, it names
    none or an unknown one, or it cannot be read (its own validators report that file's problems). `mtime_ns`: the
    file's, when the caller has just stat()ed it."""
    if tenant_id is None:
        return PLANS[DEFAULT_PLAN]
    path = config_dir / tenant_id / "tenant.yaml"
    if mtime_ns is None:
        try:
            mtime_ns = path.stat().st_mtime_ns
        except OSError:
            return PLANS[DEFAULT_PLAN]
    return PLANS.get(_plan_named_in(str(path), mtime_ns), PLANS[DEFAULT_PLAN])


@lru_cache(maxsize=1024)
def _plan_named_in(path: str, _mtime_ns: int) -> str:
    """`plan:` of a tenant.yaml, read once per file version (every uncached pipeline load asks)."""
    try:
        data = load_checked(read_config_text(Path(path))).data
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        return DEFAULT_PLAN
    return str(data.get("plan")) if isinstance(data, dict) else DEFAULT_PLAN


def _value_bytes(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    try:
        return len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
    except (TypeError, ValueError, RecursionError):
        return 1 << 30  # not JSON: never accepted


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
