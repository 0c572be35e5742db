"""The benchmark harness: cases, figures, statistics, the stdout table and the JSON record.

A case is one row of the issue's table (P1..P6). It either measures and returns figures, or is *pending*: it names the
feature it needs and prints "not measured yet: needs <feature>" — never a made-up number. Adding a case when a
feature lands is one module in bench/cases/ with a `CASE = Case(...)` and one line in bench/cases/__init__.py.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "bench" / "results"

Comparison = Literal["<=", ">="]
Status = Literal["measured", "pending", "skipped", "error"]


@dataclass(frozen=True)
class Target:
    """What "fast" means for one figure (from issue 7's table)."""

    op: Comparison
    value: float

    def met_by(self, measured: float) -> bool:
        return measured <= self.value if self.op == "<=" else measured >= self.value

    def __str__(self) -> str:
        return f"{self.op} {_number(self.value)}"


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    target: Target | None = None
    note: str = ""
    samples: int | None = None
    """How many measurements the figure summarises (None for single values and ratios)."""

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met_by(self.value)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "value": self.value, "unit": self.unit}
        if self.target is not None:
            out["target"] = {"op": self.target.op, "value": self.target.value}
            out["met"] = self.met
        if self.samples is not None:
            out["samples"] = self.samples
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class CaseResult:
    case_id: str
    title: str
    status: Status
    figures: list[Figure] = field(default_factory=list)
    reason: str = ""
    """Why nothing was measured (pending / skipped / error)."""
    details: dict[str, Any] = field(default_factory=dict)
    """Extra context worth keeping in the JSON (e.g. the warehouse used, the profile's top costs)."""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.case_id,
            "title": self.title,
            "status": self.status,
            "seconds": round(self.seconds, 2),
            "figures": [f.to_json() for f in self.figures],
        }
        if self.reason:
            out["reason"] = self.reason
        if self.details:
            out["details"] = self.details
        return out


class Skip(Exception):
    """Raised by a case that cannot run here (e.g. the Google emulators are not installed): reported, not faked."""


@dataclass(frozen=True)
class Options:
    quick: bool = False
    """Fewer repetitions (a smoke run of the harness itself; figures are noisier)."""


Measure = Callable[[Options], CaseResult]


@dataclass(frozen=True)
class Case:
    case_id: str
    title: str
    measure: Measure | None = None
    needs: str = ""
    """For a pending case: the feature (and issue) it waits for."""

    def run(self, options: Options) -> CaseResult:
        if self.measure is None:
            return CaseResult(self.case_id, self.title, "pending", reason=f"not measured yet: needs {self.needs}")
        started = time.monotonic()
        try:
            result = self.measure(options)
        except Skip as exc:
            result = CaseResult(self.case_id, self.title, "skipped", reason=f"not measured: {exc}")
        except Exception as exc:  # one broken case must not hide the others' figures
            result = CaseResult(self.case_id, self.title, "error", reason=f"{type(exc).__name__}: {exc}")
        result.seconds = time.monotonic() - started
        return result


def pending(case_id: str, title: str, needs: str) -> Case:
    return Case(case_id, title, None, needs)


# ---------------------------------------------------------------------------------------------------- statistics
def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); q in [0, 100]."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


# ---------------------------------------------------------------------------------------------------- the record
def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib: float | None = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in load],
    }


def git_commit() -> str:
    """Short commit id, with `-dirty` when the tree has uncommitted changes (the figures are for that tree)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def record(results: list[CaseResult], started_at: datetime, argv: Sequence[str]) -> dict[str, Any]:
    return {
        "date": started_at.date().isoformat(),
        "started_at": started_at.isoformat(timespec="seconds"),
        "commit": git_commit(),
        "command": " ".join(argv),
        "machine": machine_info(),
        "cases": [r.to_json() for r in results],
    }


def write_record(data: dict[str, Any], folder: Path = RESULTS_DIR) -> tuple[Path, Path]:
    """`<date>-<commit>.json` plus `latest.json`, each written to a temp file then renamed (never half a file)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    named = folder / f"{data['date']}-{data['commit']}.json"
    latest = folder / "latest.json"
    for path in (named, latest):
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return named, latest


# ---------------------------------------------------------------------------------------------------- the table
def _number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.1:
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return f"{value:.4f}".rstrip("0").rstrip(".")


def verdict(figure: Figure) -> str:
    met = figure.met
    return "" if met is None else ("met" if met else "MISSED")


def render_table(results: list[CaseResult], machine: dict[str, Any], commit: str, date: str) -> str:
    """Plain text (no colours, fixed columns): readable in a terminal, a CI log and pasted into the README."""
    header = ("case", "figure", "value", "target", "")
    rows: list[tuple[str, str, str, str, str]] = []
    for result in results:
        if result.status != "measured":
            rows.append((result.case_id, result.title, "-", "", result.reason))
            continue
        for i, fig in enumerate(result.figures):
            value = f"{_number(fig.value)} {fig.unit}".strip()
            target = f"{fig.target} {fig.unit}".strip() if fig.target else ""
            extra = " ".join(x for x in (verdict(fig), f"(n={fig.samples})" if fig.samples else "", fig.note) if x)
            rows.append((result.case_id if i == 0 else "", fig.name, value, target, extra))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = [
        f"Benchmarks {date} @ {commit} on {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, "
        f"Python {machine['python']} (load average at start {machine['load_average_at_start'][0]})",
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)),
        "  ".join("-" * w for w in widths),
    ]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[4])
    return "\n".join(line.rstrip() for line in lines)


def progress(message: str) -> None:
    """Progress goes to stderr so stdout stays the table."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def utc_now() -> datetime:
    return datetime.now(UTC)
