"""Status words are spelt once, in shared/contracts/states.py: a bare "FAILED" anywhere else in shared/ or functions/
is a string the type checker cannot check (a typo in one is silent), so it fails here with its file:line.

Only string constants count: docstrings, comments and words inside longer strings (log lines, messages) do not.
"""

from __future__ import annotations

import ast
from pathlib import Path

from shared.contracts.states import AttemptStatus, RunStatus, StageStatus, StatementState

ROOT = Path(__file__).resolve().parents[2]
STATES_MODULE = ROOT / "shared" / "contracts" / "states.py"
STATUS_WORDS = frozenset(str(s) for enum in (RunStatus, StageStatus, AttemptStatus, StatementState) for s in enum)


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the Constant nodes that are docstrings (a string expression statement: never a value)."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }


def status_literals(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """(line, word) of every string constant in `source` that is exactly a status word."""
    tree = ast.parse(source, filename)
    skip = _docstrings(tree)
    return sorted(
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value in STATUS_WORDS
        and id(node) not in skip
    )


def test_status_words_appear_only_in_the_states_module() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {word!r}"
        for folder in ("shared", "functions")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != STATES_MODULE
        for line, word in status_literals(path.read_text(encoding="utf-8"), str(path))
    ]
    assert not found, "use RunStatus/StageStatus/AttemptStatus/StatementState instead of:\n" + "\n".join(found)


def test_the_scan_finds_a_bare_status_and_passes_over_prose() -> None:
    source = '''"""A module whose docstring says FAILED."""
x = 1  # "FAILED" in a comment
def f(doc):
    """RUNNING."""
    log = f"stage is RUNNING: {doc}"
    return doc["status"] == "FAILED" or doc.get("status") in ("QUEUED", "DONE") or "RUNNING now"
'''
    assert status_literals(source) == [(6, "DONE"), (6, "FAILED"), (6, "QUEUED")]


def test_every_status_word_is_a_member_value() -> None:
    assert {"QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT", "SKIPPED"} <= STATUS_WORDS
    assert {"LOST", "DONE", "MISSING"} <= STATUS_WORDS
