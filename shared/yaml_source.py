"""Where a problem is in a YAML file: the `file:line:column: key: message` every config validator reports."""

from __future__ import annotations

from dataclasses import dataclass

import yaml

YamlPath = tuple[str | int, ...]


@dataclass(frozen=True)
class SourceIssue:
    file: str
    line: int
    column: int
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.key}: {self.message}"


def key_path(path: YamlPath) -> str:
    """("steps", 2, "depends_on") -> "steps[2].depends_on"."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<document>"


def locate(node: yaml.Node | None, path: YamlPath) -> tuple[int, int]:
    """1-based line/column of the deepest node along `path` that exists in the composed document."""
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
    return (1, 1) if best is None else (best.start_mark.line + 1, best.start_mark.column + 1)


_FastLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it


def compose_and_load(text: str) -> tuple[yaml.Node | None, object]:
    """Parse once (libyaml when available): the node tree for line/column positions and the plain data built from it.

    Raises yaml.YAMLError like yaml.safe_load.
    """
    loader = _FastLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return node, data
