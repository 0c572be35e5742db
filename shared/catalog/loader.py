"""Load pipeline YAML files into PipelineSpec, reporting every problem as `file:line:column: key: message`.

Four passes, all reported together: YAML syntax (and duplicate keys, which PyYAML would silently overwrite), the
pydantic model, whole-document rules (graph.py), and each step's processor checks (its SPEC's `validate`, through the
registry), which include the SQL scope rules for queries. A file at `{config_dir}/{tenant}/pipelines/x.yaml` is
validated for that tenant (its datasets, and every other tenant's datasets refused).
"""

from __future__ import annotations

import os
from collections.abc import Set
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shared import logs
from shared.errors import NotFound, TerminalError
from shared.pipelines import tenant_folders
from shared.pipelines.bounds import declared_plan, document_issues, size_problem, yaml_bounds
from shared.pipelines.graph import validate_graph, validate_names
from shared.pipelines.reserved import default_issues
from shared.pipelines.spec import IDENTIFIER, Parameter, PipelineSpec, StepIssue, StepSpec
from shared.pipelines.templating import ValidationScope
from shared.pipelines.tenant_folders import OtherTenants, as_other_tenants
from shared.plans import DEFAULT_PLAN, PLANS, Plan
from shared.processors.jobs import IN_INVOCATION_MAX_MINUTES
from shared.processors.registry import get_validator, is_known_type, runs_as_job
from shared.yaml_source import (
    DuplicateKey,
    SourceIssue,
    UnsafeYaml,
    compose_and_load,
    key_path,
    load_checked,
    read_config_text,
)

log = logs.get_logger(__name__)
Path_ = tuple[str | int, ...]


SpecIssue = SourceIssue


class PipelineValidationError(TerminalError):
    def __init__(self, issues: list[SpecIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


# -- public ------------------------------------------------------------------------------------------------------


def parse_pipeline(
    text: str,
    file: str,
    *,
    tenant_id: str | None = None,
    other_tenants: Set[str] = frozenset(),
    plan: Plan | None = None,
    config_dir: Path | None = None,
) -> PipelineSpec:
    """Validate YAML text; raise PipelineValidationError listing every problem found.

    `plan` (default: the default plan) caps the file's size, steps, fan-out/fan-in and parameters; a pipeline over a
    cap is reported with that problem alone, before the per-step checks it would make costly. `config_dir` (the
    tenant_configs folder of the file) lets steps check what the tenant's tenant.yaml declares."""
    plan = plan or PLANS[DEFAULT_PLAN]
    doc = _Document(text, file)
    data, duplicates = doc.parse(plan)
    over = [doc.issue(path, message, at_key=at_key) for path, message, at_key in document_issues(data, plan)]
    if over:
        raise PipelineValidationError(over)
    issues = [doc.duplicate_issue(d) for d in duplicates]
    spec: PipelineSpec | None = None
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            path = tuple(err["loc"])
            at_key = err["type"] == "extra_forbidden" or (bool(path) and path[-1] == "[key]")
            path = tuple(p for p in path if p != "[key]")
            issues.append(doc.issue(path, _message(err["msg"]), at_key=at_key))
    steps = data.get("steps")
    step_dicts = [s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else []
    if isinstance(steps, list) and len(step_dicts) == len(steps):
        for g in validate_graph(step_dicts, is_known_type):
            issues.append(doc.issue(g.path, g.message))
    for g in validate_names(data):
        at_key = bool(g.path) and g.path[-1] == "[key]"
        issues.append(doc.issue(tuple(p for p in g.path if p != "[key]"), g.message, at_key=at_key))
    if isinstance(steps, list):
        scope = _scope(data, tenant_id, other_tenants, config_dir)
        for i, raw in enumerate(steps):
            for problem in _step_issues(raw, scope):
                issues.append(doc.issue(("steps", i, *problem.path), problem.message, offset=problem.offset))
    if issues or spec is None:
        raise PipelineValidationError(sorted(set(issues), key=lambda i: (i.line, i.column, i.key, i.message)))
    return spec


def load_pipeline(path: Path, *, mtime_ns: int | None = None, tenant_yaml_mtime_ns: int | None = None) -> PipelineSpec:
    """A pipeline file, validated against the plan its tenant.yaml names (re-validated when either file changes).
    The mtimes are the files' when the caller has just stat()ed them (the compiled-pipeline cache has)."""
    plan = declared_plan(path.parent.parent.parent, _tenant_folder(path), tenant_yaml_mtime_ns)
    return _load_cached(str(path), path.stat().st_mtime_ns if mtime_ns is None else mtime_ns, plan.name)


def locate_issues(text: str, file: str, problems: list[tuple[Path_, str, int | None]]) -> list[SpecIssue]:
    """Problems found after validation (`sql_check`, against the warehouse), each a (path in the document, message,
    offset inside a string setting or None), at their file:line:column like the loader's own."""
    doc = _Document(text, file)
    return [doc.issue(path, message, offset=offset) for path, message, offset in problems]


def display_name(path: Path) -> str:
    """The file as messages name it: `tenant_configs/<tenant>/pipelines/<id>.yaml` for a tenant's pipeline, never
    the deployment's host path."""
    return "/".join(path.parts[-4:]) if _tenant_folder(path) is not None else str(path)


def pipeline_path(config_dir: Path, tenant_id: str, pipeline_id: str) -> Path:
    """The YAML file of a tenant's pipeline; ids are validated first so a path can never escape config_dir."""
    for name, value in (("tenant_id", tenant_id), ("pipeline_id", pipeline_id)):
        if not IDENTIFIER.match(value):
            raise NotFound(f"no such {name.split('_')[0]}: {value!r}", {"field": name})
    return config_dir / tenant_id / "pipelines" / f"{pipeline_id}.yaml"


def find_pipeline(config_dir: Path, tenant_id: str, pipeline_id: str) -> PipelineSpec:
    path = pipeline_path(config_dir, tenant_id, pipeline_id)
    if not (config_dir / tenant_id).is_dir():
        raise NotFound(f"unknown tenant {tenant_id!r}", {"field": "tenant_id"})
    if not path.is_file():
        raise NotFound(f"tenant {tenant_id!r} has no pipeline {pipeline_id!r}", {"field": "pipeline_id"})
    return load_pipeline(path)


def list_pipeline_files(config_dir: Path, tenant_id: str | None = None) -> list[Path]:
    pattern = f"{tenant_id}/pipelines/*.yaml" if tenant_id else "*/pipelines/*.yaml"
    return sorted(config_dir.glob(pattern))


def snapshot(spec: PipelineSpec) -> dict[str, Any]:
    """JSON-native form stored in the run document, so a run keeps the spec it started with."""
    return spec.model_dump(mode="json")


def tenant_of(path: Path) -> tuple[str | None, OtherTenants]:
    """(tenant, other tenants) for a file laid out as `{config_dir}/{tenant}/pipelines/{pipeline}.yaml`. The other
    tenants are a view of the config folder's cached listing (shared.pipelines.tenant_folders): no copy per load."""
    tenant_id = _tenant_folder(path)
    if tenant_id is None:
        return None, OtherTenants()
    return tenant_id, tenant_folders.other_tenants(path.parent.parent.parent, tenant_id)


def _tenant_folder(path: Path) -> str | None:
    """The tenant a file laid out as `{config_dir}/{tenant}/pipelines/{pipeline}.yaml` belongs to, else None. Split
    as a string: a cold load asks three times, and pathlib's parents cost more than the rest of the question."""
    parts = os.fspath(path).rsplit(os.sep, 3)
    if len(parts) < 3 or parts[-2] != "pipelines" or not IDENTIFIER.match(parts[-3]):
        return None
    return parts[-3]


@lru_cache(maxsize=256)
def _load_cached(path: str, _mtime_ns: int, plan_name: str) -> PipelineSpec:
    file = Path(path)
    tenant_id, others = tenant_of(file)
    plan = PLANS[plan_name]
    # Messages name the file as the tenant knows it (`tenant_configs/acme/pipelines/x.yaml`), never the host path of
    # the deployment: a validation error reaches the tenant in an API answer.
    path = display_name(file)
    try:  # reads at most the plan's size + 1 byte: a 56 MB file is refused without being read
        text = read_config_text(file, yaml_bounds(plan))
    except UnsafeYaml:
        problem = size_problem(file.stat().st_size, plan) or "the file is too large"
        raise PipelineValidationError([SpecIssue(path, 1, 1, "<document>", problem)]) from None
    except UnicodeDecodeError as exc:
        raise PipelineValidationError([SpecIssue(path, 1, 1, "<document>", f"not UTF-8 text: {exc}")]) from None
    config_dir = file.parent.parent.parent if tenant_id is not None else None
    spec = parse_pipeline(text, path, tenant_id=tenant_id, other_tenants=others, plan=plan, config_dir=config_dir)
    if tenant_id is not None and spec.pipeline_id != file.stem:
        issue = _Document(text, path).issue(
            ("pipeline_id",), f"must match the file name ({file.stem!r}): runs find the pipeline by it"
        )
        raise PipelineValidationError([issue])
    return spec


# -- passes ------------------------------------------------------------------------------------------------------


def _scope(
    data: dict[str, Any], tenant_id: str | None, other_tenants: Set[str], config_dir: Path | None
) -> ValidationScope:
    """Declared parameters and variables, each taken if valid on its own (a bad one is reported elsewhere)."""
    types: dict[str, str] = {}
    defaults: dict[str, Any] = {}
    raw_params = data.get("parameters")
    for name, raw in (raw_params if isinstance(raw_params, dict) else {}).items():
        try:
            param = Parameter.model_validate(raw if raw is not None else {})
        except ValidationError:
            continue
        types[str(name)] = param.type
        if param.default is not None:
            defaults[str(name)] = param.default
    raw_vars = data.get("variables")
    variables = {
        str(k): v.isoformat() if isinstance(v, date | datetime) else v
        for k, v in (raw_vars.items() if isinstance(raw_vars, dict) else ())
    }
    others = as_other_tenants(other_tenants, tenant_id)
    return ValidationScope(tenant_id, others, types, defaults, variables, config_dir)


def _step_issues(raw: Any, scope: ValidationScope) -> list[StepIssue]:
    """The processor's own checks, for a step that is valid as a StepSpec (else pydantic reported it already)."""
    try:
        step = StepSpec.model_validate(raw)
    except ValidationError:
        return []
    reserved = [StepIssue(path, message, offset) for path, message, offset in default_issues(step.destination, scope)]
    explicit = "timeout_minutes" in step.model_fields_set
    if explicit and step.timeout_minutes > IN_INVOCATION_MAX_MINUTES and not runs_as_job(step.ps_type):
        reserved.append(
            StepIssue(
                ("timeout_minutes",),
                f"a {step.ps_type} step runs inside one function invocation: at most {IN_INVOCATION_MAX_MINUTES:g} "
                "minutes (Cloud Functions stops it at 540 s); longer work needs a step type that runs as a job",
            )
        )
    if not is_known_type(step.ps_type):
        return reserved
    try:
        return reserved + get_validator(step.ps_type)(step, scope)
    except Exception as exc:  # a validator bug must not hide the file's other problems
        log.exception("the validate of %s failed", step.ps_type)
        return [StepIssue(("ps_type",), f"the {step.ps_type} checks failed: {type(exc).__name__}: {exc}")]


def _message(msg: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg


class _Document:
    """One YAML text: parsing, and turning a path (plus an offset inside a string) into a line and column."""

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.lines = text.split("\n")
        self._root: yaml.Node | None = None

    def parse(self, plan: Plan) -> tuple[dict[str, Any], tuple[DuplicateKey, ...]]:
        """The data and its duplicate keys, read in one pass with no node tree: the nodes are composed only when a
        problem needs a position (`issue`)."""
        problem = size_problem(len(self.text.encode("utf-8")), plan)
        if problem:
            raise PipelineValidationError([SpecIssue(self.file, 1, 1, "<document>", problem)])
        try:  # anchors/aliases, node count and depth refused on the events, before anything is built
            loaded = load_checked(self.text, yaml_bounds(plan))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            problem = getattr(exc, "problem", None) or str(exc)
            raise PipelineValidationError(
                [SpecIssue(self.file, line, col, "<document>", f"invalid YAML: {problem}")]
            ) from exc
        if not isinstance(loaded.data, dict):
            raise PipelineValidationError(
                [SpecIssue(self.file, 1, 1, "<document>", "a pipeline is a YAML mapping (pipeline_id, steps, ...)")]
            )
        return loaded.data, loaded.duplicate_keys

    def duplicate_issue(self, duplicate: DuplicateKey) -> SpecIssue:
        return SpecIssue(
            self.file,
            duplicate.line,
            duplicate.column,
            key_path((*duplicate.path, duplicate.name)),
            f"duplicate key {duplicate.name!r} (first at line {duplicate.first_line}); YAML would keep only the last",
        )

    def issue(self, path: Path_, message: str, *, at_key: bool = False, offset: int | None = None) -> SpecIssue:
        if self._root is None:  # composed once, for the first problem: a valid file never needs its nodes
            self._root = compose_and_load(self.text)[0]
        root = self._root
        target, key_node, complete = _walk(root, path) if root is not None else (None, None, False)
        if at_key and key_node is not None and complete:
            mark = key_node.start_mark
            line, col = mark.line + 1, mark.column + 1
        elif target is None:
            line, col = 1, 1
        elif offset is not None and complete and isinstance(target, yaml.ScalarNode):
            line, col = self._in_scalar(target, offset)
        else:
            line, col = target.start_mark.line + 1, target.start_mark.column + 1
        return SpecIssue(self.file, line, col, key_path(path), message)

    def _in_scalar(self, node: yaml.ScalarNode, offset: int) -> tuple[int, int]:
        """File line/column of character `offset` of a scalar's value. Exact for literal blocks (`|`) and one-line
        scalars; the scalar's first line for folded or multi-line flow scalars, whose line breaks are rewritten."""
        value = str(node.value)
        before = value[: max(0, min(offset, len(value)))]
        row, col = before.count("\n"), len(before) - (before.rfind("\n") + 1)
        start = node.start_mark
        if node.style == "|":
            first = start.line + 1
            indent = _indent(self.lines, first)
            return first + row + 1, indent + col + 1
        if node.style == ">" or start.line != node.end_mark.line:
            return start.line + 1, start.column + 1
        quote = 1 if node.style in ("'", '"') else 0
        return start.line + 1, start.column + 1 + quote + col


def _walk(node: yaml.Node, path: Path_) -> tuple[yaml.Node | None, yaml.Node | None, bool]:
    """(deepest node along `path`, the key node of the last step, whether the whole path was found)."""
    best: yaml.Node = node
    key_node: yaml.Node | None = None
    for part in path:
        if isinstance(best, yaml.MappingNode):
            pair = next((kv for kv in best.value if isinstance(kv[0], yaml.ScalarNode) and kv[0].value == part), None)
            if pair is None:
                return best, None, False
            key_node, best = pair
        elif isinstance(best, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(best.value):
            key_node, best = None, best.value[part]
        else:
            return best, None, False
    return best, key_node, True


def _indent(lines: list[str], first: int) -> int:
    """Indentation of a block scalar's content: that of its first non-blank line."""
    for text in lines[first:]:
        if text.strip():
            return len(text) - len(text.lstrip(" "))
    return 0
