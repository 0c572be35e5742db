"""The reliability/security suite's harness: checks, one printed figure per line, and the exit status.

Every figure is PASS, FAIL, NOT MEASURED or INFO (context such as a recovery time, judged by nobody). A check whose
feature has not landed prints "not measured yet: needs <feature>" and is never counted as a pass; only a FAIL (a loss)
makes the exit status non-zero, unless `--strict` asks for every figure to be measured.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Verdict = Literal["PASS", "FAIL", "NOT MEASURED", "INFO"]


@dataclass(frozen=True)
class Figure:
    check: str
    name: str
    value: str
    verdict: Verdict
    expected: str = ""
    note: str = ""

    def render(self) -> str:
        expected = f" (expected {self.expected})" if self.expected and self.verdict in ("PASS", "FAIL") else ""
        note = f"  -- {self.note}" if self.note else ""
        return f"{self.verdict:<12}  {self.check}: {self.name} = {self.value}{expected}{note}"


def figure(check: str, name: str, value: object, ok: bool, expected: str, note: str = "") -> Figure:
    return Figure(check, name, str(value), "PASS" if ok else "FAIL", expected, note)


def info(check: str, name: str, value: object, note: str = "") -> Figure:
    return Figure(check, name, str(value), "INFO", "", note)


def ratio(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100.0 * part / whole:.0f} %)" if whole else "0/0"


@dataclass(frozen=True)
class Options:
    quick: bool = False
    """Fewer runs per check: a smoke run of the suite itself."""


class NotMeasured(Exception):
    """A check that finds its feature missing at run time (e.g. API keys not enforced yet, no Google emulators)."""


Run = Callable[[Options], list[Figure]]


@dataclass(frozen=True)
class Check:
    key: str
    """Short id for `--only` (e.g. `duplicates`)."""
    name: str
    run: Run | None = None
    needs: str = ""
    """For a pending check: the feature (and issue) it waits for."""
    figures_when_pending: tuple[str, ...] = field(default_factory=tuple)

    def execute(self, options: Options) -> list[Figure]:
        if self.run is None:
            names = self.figures_when_pending or ("result",)
            return [
                Figure(self.name, n, "-", "NOT MEASURED", note=f"not measured yet: needs {self.needs}") for n in names
            ]
        try:
            return self.run(options)
        except NotMeasured as exc:
            return [Figure(self.name, "result", "-", "NOT MEASURED", note=f"not measured: {exc}")]
        except Exception as exc:  # a broken drill is a failure to show, not a crash that hides the other figures
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            traceback.print_exc(file=sys.stderr)
            return [Figure(self.name, "drill completed", "no", "FAIL", "yes", detail[:500])]


def pending(key: str, name: str, needs: str, *figures: str) -> Check:
    return Check(key, name, None, needs, figures)


def progress(message: str) -> None:
    print(f"[reliability] {message}", file=sys.stderr, flush=True)


def run_checks(checks: list[Check], options: Options) -> list[Figure]:
    out: list[Figure] = []
    for check in checks:
        progress(f"{check.name} ...")
        started = time.monotonic()
        figures = check.execute(options)
        for fig in figures:
            print(fig.render(), flush=True)
        progress(f"{check.name}: done in {time.monotonic() - started:.1f} s")
        out += figures
    return out


def summary(figures: list[Figure]) -> str:
    passed = sum(f.verdict == "PASS" for f in figures)
    failed = sum(f.verdict == "FAIL" for f in figures)
    missing = sum(f.verdict == "NOT MEASURED" for f in figures)
    return f"reliability: {passed} figures passed, {failed} failed, {missing} not measured (not counted as passed)"


def exit_status(figures: list[Figure], strict: bool) -> int:
    if any(f.verdict == "FAIL" for f in figures):
        return 1
    if strict and any(f.verdict == "NOT MEASURED" for f in figures):
        return 2
    return 0
