"""compose_and_load builds plain documents on a short path (shared/yaml_source._construct), and load_checked builds them
from the events in one pass with no node tree: both must give exactly what PyYAML's SafeConstructor gives, data and
errors, for every config file in the repository and for the YAML features the short paths hand to PyYAML (merge keys,
tagged collections, `=` keys, unhashable keys, typed scalars, a second document); load_checked's duplicate keys must
be those of the composed nodes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shared.yaml_source import _FastLoader, compose_and_load, duplicate_keys_of, load_checked

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
    "x:\n  - {a: 1, a: 2}\n  - b: 1\n    c:\n      d: 1\n      d: 2\n      d: 3\n",
    "1: a\n01: b\n1: c",
    "a: 1\n---\nb: 2",
    "a: !!binary '@@'\nb: [",
    "- - - - [deep, {k: v, k: w}]",
    "a: 0b101\nb: 0o17\nc: 1_000\nd: 1:30\ne: null\nf: ''\ng: |\n  block\nh: >\n  folded\n",
    "a: 1\n...\n",
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


def _one_pass(text: str) -> tuple[str, object]:
    try:
        return "ok", load_checked(text).data
    except yaml.YAMLError as exc:
        return "error", type(exc).__name__


def _duplicates_agree(text: str) -> bool:
    try:
        found = load_checked(text).duplicate_keys
    except yaml.YAMLError:
        return True  # nothing to compare: the error itself is compared above
    return found == tuple(duplicate_keys_of(compose_and_load(text)[0]))


def _same(a: tuple[str, object], b: tuple[str, object]) -> bool:
    return repr(a) == repr(b)  # repr: a NaN is not equal to itself


def test_the_repository_has_config_files_to_compare() -> None:
    assert len(CONFIG_FILES) >= 20


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_config_file_reads_as_pyyaml_reads_it(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    short = _short_path(text)
    assert _same(_one_pass(text), short)
    assert _duplicates_agree(text)
    if short == ("error", "UnsafeYaml"):  # anchors, aliases: refused before construction, nothing to compare
        return
    assert _same(short, _reference(text))


@pytest.mark.parametrize("text", TRICKY)
def test_features_left_to_pyyaml_read_the_same(text: str) -> None:
    assert _same(_short_path(text), _reference(text))
    assert _same(_one_pass(text), _reference(text))
    assert _duplicates_agree(text)


@pytest.mark.parametrize(
    "text", ["a: !!binary '@@'\nb: &c 1", "a: !!int x\nb: &c 1", "a: 1\n---\nb: *c", f"a: 1\nb: {'9' * 5000}"]
)
def test_the_one_pass_refuses_what_compose_and_load_refuses_first(text: str) -> None:
    """compose_and_load checks the whole document before it builds anything: a later anchor wins over an earlier
    value that cannot be built."""
    assert _same(_one_pass(text), _short_path(text)) and _short_path(text) == ("error", "UnsafeYaml")


def test_the_one_pass_reports_duplicate_keys_where_they_are() -> None:
    found = load_checked("x:\n  - {a: 1, a: 2}\n  - c:\n      d: 1\n      d: 2\n").duplicate_keys
    assert [(d.path, d.name, d.line, d.column, d.first_line) for d in found] == [
        (("x", 0), "a", 2, 12, 2),
        (("x", 1, "c"), "d", 5, 7, 4),
    ]
