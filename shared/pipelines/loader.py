"""Load pipeline YAML files into PipelineSpec, reporting every problem as `file:line:column: key: message`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shared.errors import NotFound, TerminalError
from shared.pipelines.graph import validate_graph
from shared.pipelines.spec import IDENTIFIER, PipelineSpec
from shared.processors.registry import is_known_type


@dataclass(frozen=True)
class SpecIssue:
    file: str
    line: int
    column: int
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.key}: {self.message}"


class PipelineValidationError(TerminalError):
    def __init__(self, issues: list[SpecIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


def _locate(node: yaml.Node | None, path: tuple[str | int, ...]) -> tuple[int, int]:
    """1-based line/column of the deepest node along `path` that exists."""
    best = node
    for part in path:
        if isinstance(best, yaml.MappingNode):
            nxt = next((v for k, v in best.value if isinstance(k, yaml.ScalarNode) and k.value == part), None)
            if nxt is None:
                break
            best = nxt
        elif isinstance(best, yaml.SequenceNode) and isinstance(part, int) and part < len(best.value):
            best = best.value[part]
        else:
            break
    if best is None:
        return 1, 1
    return best.start_mark.line + 1, best.start_mark.column + 1


def _key(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<document>"


def parse_pipeline(text: str, file: str) -> PipelineSpec:
    """Validate YAML text; raise PipelineValidationError listing every problem found."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise PipelineValidationError([SpecIssue(file, line, col, "<document>", f"invalid YAML: {exc}")]) from exc
    if not isinstance(data, dict):
        raise PipelineValidationError([SpecIssue(file, 1, 1, "<document>", "a pipeline must be a YAML mapping")])
    issues: list[SpecIssue] = []
    spec: PipelineSpec | None = None
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            path = tuple(err["loc"])
            line, col = _locate(node, path)
            issues.append(SpecIssue(file, line, col, _key(path), err["msg"]))
    steps = data.get("steps")
    if isinstance(steps, list):
        for g in validate_graph([s for s in steps if isinstance(s, dict)], is_known_type):
            line, col = _locate(node, g.path)
            issues.append(SpecIssue(file, line, col, _key(g.path), g.message))
    if issues or spec is None:
        raise PipelineValidationError(sorted(set(issues), key=lambda i: (i.line, i.column, i.key)))
    return spec


def load_pipeline(path: Path) -> PipelineSpec:
    return _load_cached(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=256)
def _load_cached(path: str, _mtime_ns: int) -> PipelineSpec:
    return parse_pipeline(Path(path).read_text(encoding="utf-8"), path)


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
