"""compose_and_load builds plain documents on a short path (shared/yaml_source._construct): it must give exactly what
PyYAML's SafeConstructor gives, data and errors, for every config file in the repository and for the YAML features
the short path hands to PyYAML (merge keys, tagged collections, `=` keys, unhashable keys, typed scalars)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shared.yaml_source import _FastLoader, compose_and_load

ROOT = Path(__file__).resolve().parents[2]
CONFIG_FILES = sorted(
    path
    for folder in ("tenant_configs", "terraform", "tests", "docs")
    for path in (ROOT / folder).rglob("*.y*ml")
    if path.is_file()
)
TRICKY = [
    "a: !!set {x, y}",
    "a: !!omap [{x: 1}, {y: 2}]",
    "<<: {a: 1}\nb: 2",
    "base: {a: 1}\nuse:\n  <<: {b: 2}\n  c: 3",
    "? [a]\n: 1",
    "? {a: 1}\n: 1",
    "a: 2026-01-01\nb: 1.5\nc: yes\nd: ~\ne: 0x1f\nf: '1'\ng: !!str 5\nh: !!binary aGk=\ni: 2026-01-01T02:00:00Z",
    "- =\n",
    "=: 1",
    "a: !!int '7'",
    "a: !foo x",
    "a: 1\na: 2",
    "[1, [2, [3, {x: [4]}]]]",
    "plain text",
    "",
    "a: !!float '1e3'\nb: .inf\nc: -.NaN",
]


def _reference(text: str) -> tuple[str, object]:
    loader = _FastLoader(text)
    try:
        node = loader.get_single_node()
        return "ok", loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        return "error", type(exc).__name__
    finally:
        loader.dispose()


def _short_path(text: str) -> tuple[str, object]:
    try:
        return "ok", compose_and_load(text)[1]
    except yaml.YAMLError as exc:
        return "error", type(exc).__name__


def _same(a: tuple[str, object], b: tuple[str, object]) -> bool:
    return repr(a) == repr(b)  # repr: a NaN is not equal to itself


def test_the_repository_has_config_files_to_compare() -> None:
    assert len(CONFIG_FILES) >= 20


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_config_file_reads_as_pyyaml_reads_it(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    short = _short_path(text)
    if short == ("error", "UnsafeYaml"):  # anchors, aliases: refused before construction, nothing to compare
        return
    assert _same(short, _reference(text))


@pytest.mark.parametrize("text", TRICKY)
def test_features_left_to_pyyaml_read_the_same(text: str) -> None:
    assert _same(_short_path(text), _reference(text))
