"""Whole-document checks on a pipeline: unique step ids, known dependencies, no cycles, known processors, and names
shared between sections. They run on the raw YAML data, so they report even when a field elsewhere is invalid."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class GraphIssue:
    path: tuple[str | int, ...]
    """Where in the YAML document the problem is, e.g. ("steps", 2, "depends_on", 0)."""
    message: str


def validate_graph(steps: list[dict[str, object]], is_known_type: Callable[[str], bool]) -> list[GraphIssue]:
    issues: list[GraphIssue] = []
    index: dict[str, int] = {}
    for i, step in enumerate(steps):
        sid = str(step.get("step_id", ""))
        if sid in index:
            issues.append(
                GraphIssue(("steps", i, "step_id"), f"duplicate step_id {sid!r} (first at steps[{index[sid]}])")
            )
        else:
            index[sid] = i
        ps_type = str(step.get("ps_type", ""))
        if ps_type and not is_known_type(ps_type):
            issues.append(GraphIssue(("steps", i, "ps_type"), f"unknown ps_type {ps_type!r}"))
    for i, step in enumerate(steps):
        deps = step.get("depends_on") or []
        seen: set[object] = set()
        for j, dep in enumerate(deps if isinstance(deps, list) else []):
            if dep == step.get("step_id"):
                issues.append(GraphIssue(("steps", i, "depends_on", j), "a step cannot depend on itself"))
            elif dep not in index:
                known = ", ".join(sorted(index)) or "none"
                issues.append(GraphIssue(("steps", i, "depends_on", j), f"unknown dependency {dep!r} (steps: {known})"))
            elif dep in seen:
                issues.append(GraphIssue(("steps", i, "depends_on", j), f"{dep!r} is listed twice"))
            seen.add(dep)
        if step.get("trigger") == "on_failure" and not deps:
            issues.append(
                GraphIssue(
                    ("steps", i, "trigger"), "trigger on_failure needs depends_on: it runs when one of them fails"
                )
            )
    cycle = find_cycle({str(s.get("step_id")): [str(d) for d in _as_list(s.get("depends_on"))] for s in steps})
    if cycle:
        first = index.get(cycle[0], 0)
        issues.append(GraphIssue(("steps", first, "depends_on"), "dependency cycle: " + " -> ".join(cycle)))
    return issues


def validate_names(data: dict[str, object]) -> list[GraphIssue]:
    """A name is either a parameter or a variable (both are `{name}` and `@name`); a scheduled run gives no
    parameters, so a scheduled pipeline cannot require one without a default."""
    issues: list[GraphIssue] = []
    parameters = data.get("parameters") if isinstance(data.get("parameters"), dict) else {}
    variables = data.get("variables") if isinstance(data.get("variables"), dict) else {}
    assert isinstance(parameters, dict) and isinstance(variables, dict)
    for name in variables:
        if name in parameters:
            issues.append(GraphIssue(("variables", name, "[key]"), f"{name!r} is also a parameter: rename one"))
    if data.get("schedule"):
        for name, param in parameters.items():
            if isinstance(param, dict) and param.get("required") and param.get("default") is None:
                issues.append(
                    GraphIssue(
                        ("parameters", name, "required"),
                        f"parameter {name!r} is required but the pipeline has a schedule, and a scheduled run gives "
                        "no parameters: give it a default",
                    )
                )
    return issues


def _as_list(value: object) -> Iterable[object]:
    return value if isinstance(value, list) else []


def find_cycle(deps: dict[str, list[str]]) -> list[str] | None:
    """A cycle as a list of step ids (first == last), or None.

    Iterative DFS: a deep pipeline must not hit Python's recursion limit.
    """
    state: dict[str, int] = {}  # 1 = on stack, 2 = done
    for start in deps:
        if state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = [start]
        state[start] = 1
        while stack:
            node, i = stack[-1]
            children = [d for d in deps.get(node, []) if d in deps and d != node]
            if i < len(children):
                stack[-1] = (node, i + 1)
                child = children[i]
                if state.get(child) == 1:
                    return [*path[path.index(child) :], child]
                if not state.get(child):
                    state[child] = 1
                    stack.append((child, 0))
                    path.append(child)
            else:
                state[node] = 2
                stack.pop()
                path.pop()
    return None
