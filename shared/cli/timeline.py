"""A run's stage timeline in the terminal: one Gantt row per stage, one bar per attempt, waits and skips visible.

Used by `cloudact runs show` (and the summary of `cloudact run` / `make demo`) and, redrawn live, by `cloudact runs
watch`. Every mark has its own glyph as well as a colour (a failed attempt is `▒`, a wait before a retry `·`, a
skipped stage is written out), so the picture reads the same without colour, e.g. in a CI log.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from shared.clock import parse_iso, utc_now
from shared.contracts.states import ACTIVE, TERMINAL, AttemptStatus, StageStatus

STATUS_STYLE: dict[str, str] = {
    StageStatus.SUCCEEDED: "green",
    StageStatus.FAILED: "red",
    StageStatus.TIMED_OUT: "red",
    StageStatus.CANCELLED: "yellow",
    StageStatus.SKIPPED: "dim",
    StageStatus.RUNNING: "cyan",
    StageStatus.QUEUED: "white",
}
ATTEMPT_GLYPH: dict[str, str] = {
    AttemptStatus.SUCCEEDED: "█",
    AttemptStatus.FAILED: "▒",
    AttemptStatus.TIMED_OUT: "▒",
    StageStatus.CANCELLED: "▒",
    StageStatus.RUNNING: "░",
}
WAIT_GLYPH = "·"
LEGEND = "█ attempt succeeded   ▒ attempt failed   ░ running   · waiting to retry   ╌skipped╌ never ran"


def _ts(value: Any) -> datetime | None:
    return parse_iso(value) if isinstance(value, str) and value else None


def format_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    minutes, seconds = divmod(ms / 1000, 60)
    return f"{minutes:.0f} min {seconds:02.0f} s"


def run_span(run: dict[str, Any], now: datetime) -> tuple[datetime, datetime]:
    """The time the chart covers: run start to run end (to now while it is active)."""
    stamps = [
        t
        for s in run.get("stages", [])
        for a in s.get("attempts") or []
        for t in (_ts(a.get("started_at")), _ts(a.get("ended_at")))
        if t is not None
    ]
    start = _ts(run.get("started_at")) or _ts(run.get("created_at")) or (min(stamps) if stamps else now)
    end = now if run.get("status") in ACTIVE else (_ts(run.get("ended_at")) or (max(stamps) if stamps else start))
    return start, max(end, start)


class _Bar:
    def __init__(self, start: datetime, end: datetime, width: int) -> None:
        self.start, self.width = start, width
        self.total = max((end - start).total_seconds(), 1e-6)
        self.cells: list[tuple[str, str]] = [(" ", "")] * width

    def index(self, at: datetime, ceil: bool = False) -> int:
        fraction = (at - self.start).total_seconds() / self.total * self.width
        return max(0, min(self.width, math.ceil(fraction) if ceil else math.floor(fraction)))

    def fill(self, begin: datetime, end: datetime, glyph: str, style: str, at_least_one: bool = True) -> None:
        first, last = self.index(begin), self.index(end, ceil=True)
        if at_least_one and last <= first:
            first, last = min(first, self.width - 1), min(first, self.width - 1) + 1
        for i in range(first, last):
            self.cells[i] = (glyph, style)

    def fill_gap(self, begin: datetime, end: datetime) -> None:
        """A wait between attempts, drawn only where no attempt is (a short attempt keeps its one cell)."""
        for i in range(self.index(begin), self.index(end, ceil=True)):
            if self.cells[i][0] == " ":
                self.cells[i] = (WAIT_GLYPH, "red")

    def label(self, at: datetime, text: str, style: str) -> None:
        first = min(self.index(at), max(0, self.width - len(text)))
        for i, ch in enumerate(text[: self.width - first]):
            self.cells[first + i] = (ch, style)

    def text(self) -> Text:
        out = Text()
        for glyph, style in self.cells:
            out.append(glyph, style=style or None)
        return out


def all_attempts(stage: dict[str, Any]) -> list[dict[str, Any]]:
    """The finished attempts plus the one in progress (a RUNNING stage's `attempts` holds only finished ones)."""
    attempts = list(stage.get("attempts") or [])
    running = stage.get("status") == StageStatus.RUNNING and stage.get("attempt_started_at")
    if running and not any(a.get("attempt") == stage.get("attempt") for a in attempts):
        attempts.append(
            {"attempt": stage.get("attempt"), "status": StageStatus.RUNNING, "started_at": stage["attempt_started_at"]}
        )
    return attempts


def stage_bar(stage: dict[str, Any], start: datetime, end: datetime, width: int, now: datetime) -> Text:
    bar = _Bar(start, end, width)
    previous_end: datetime | None = None
    for attempt in all_attempts(stage):
        began = _ts(attempt.get("started_at"))
        if began is None:
            continue
        ended = _ts(attempt.get("ended_at"))
        status = str(attempt.get("status")) if ended else StageStatus.RUNNING
        finish = ended or (now if stage.get("status") == StageStatus.RUNNING else began)
        if previous_end is not None and began > previous_end:
            bar.fill_gap(previous_end, began)
        bar.fill(began, finish, ATTEMPT_GLYPH.get(status, "█"), STATUS_STYLE.get(status, ""))
        previous_end = finish
    if stage.get("status") == StageStatus.QUEUED and previous_end is not None:  # waiting for its next attempt
        bar.fill_gap(previous_end, min(now, end))
    if stage.get("carried_from"):
        bar.label(start, "carried over", "green")
    elif not stage.get("attempts") and stage.get("status") in TERMINAL - {StageStatus.SUCCEEDED}:
        at = _ts(stage.get("ended_at")) or _ts(stage.get("updated_at")) or end
        word = "skipped" if stage["status"] == StageStatus.SKIPPED else str(stage["status"]).lower()
        bar.label(at, f"╌{word}╌", STATUS_STYLE.get(str(stage["status"]), "dim"))
    return bar.text()


def attempts_cell(stage: dict[str, Any]) -> str:
    attempts = len(all_attempts(stage))
    if attempts <= 1:
        return str(attempts) if attempts else "-"
    retries = attempts - 1
    return f"{attempts} ({retries} {'retry' if retries == 1 else 'retries'})"


def timeline_table(run: dict[str, Any], now: datetime | None = None, width: int = 44) -> Table:
    now = now or utc_now()
    start, end = run_span(run, now)
    total_ms = (end - start).total_seconds() * 1000
    right = f"{format_ms(total_ms)}{' (so far)' if run.get('status') in ACTIVE else ''}"
    axis = "0" + right.rjust(width - 1)
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    table.add_column("stage", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("attempts", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column(axis, no_wrap=True, min_width=width)
    table.add_column("rows", justify="right", no_wrap=True)
    for stage in run.get("stages", []):
        status = str(stage.get("status"))
        duration = "carried" if stage.get("carried_from") else format_ms(stage.get("duration_ms"))
        rows = stage.get("rows_out")
        table.add_row(
            str(stage.get("stage_id")),
            Text(status, style=STATUS_STYLE.get(status, "")),
            attempts_cell(stage),
            duration if all_attempts(stage) or stage.get("carried_from") else "-",
            stage_bar(stage, start, end, width, now),
            f"{rows:,}" if isinstance(rows, int) else "-",
        )
    return table


def stage_errors(run: dict[str, Any]) -> list[Text]:
    """Each stage's error, preceded by the errors of its attempts that were retried (a stage that succeeded on a
    later attempt still shows why the earlier ones failed). The last attempt's error is in the stage's own."""
    out = []
    for stage in run.get("stages", []):
        attempts = [a for a in stage.get("attempts") or [] if isinstance(a, dict) and a.get("error")]
        if stage.get("error") and attempts and attempts[-1] is (stage.get("attempts") or [None])[-1]:
            attempts = attempts[:-1]
        for attempt in attempts:
            label = f"  {stage['stage_id']} attempt {attempt.get('attempt')} ({str(attempt.get('status')).lower()}): "
            out.append(Text.assemble(label, (str(attempt["error"]), "yellow")))
        if stage.get("error"):
            out.append(Text.assemble(f"  {stage['stage_id']}: ", (str(stage["error"]), "red")))
    return out


def quality_table(run: dict[str, Any]) -> Table | None:
    """The data-quality checks the run's quality.check stages reported (their stage details carry the results)."""
    rows = [
        (str(stage.get("stage_id")), result)
        for stage in run.get("stages", [])
        for result in ((stage.get("details") or {}).get("results") or [])
        if isinstance(result, dict)
    ]
    if not rows:
        return None
    table = Table("step", "check", "severity", "result", "failed rows", "message", box=None, header_style="bold")
    for step_id, r in rows:
        status = str(r.get("status"))
        style = "green" if status == "pass" else ("yellow" if r.get("severity") == "warn" else "red")
        table.add_row(
            step_id,
            str(r.get("check_name")),
            str(r.get("severity")),
            Text(status, style=style),
            "-" if r.get("failed_rows") is None else f"{r['failed_rows']:,}",
            str(r.get("message") or ""),
        )
    return table


def progress_view(run: dict[str, Any], now: datetime | None = None) -> RenderableType:
    """What `cloudact runs watch` redraws: the run line, a progress bar over its stages, and the timeline."""
    now = now or utc_now()
    stages = run.get("stages", [])
    done = sum(1 for s in stages if s.get("status") not in ACTIVE)
    running = sum(1 for s in stages if s.get("status") == StageStatus.RUNNING)
    retrying = sum(1 for s in stages if s.get("status") == StageStatus.QUEUED and s.get("attempts"))
    start, end = run_span(run, now)
    status = str(run.get("status"))
    headline = Text.assemble(
        "run ",
        (str(run.get("run_id")), "bold"),
        f"  {run.get('tenant_id')}/{run.get('pipeline_id')}  ",
        (status, STATUS_STYLE.get(status, "")),
        f"  {format_ms((end - start).total_seconds() * 1000)}",
    )
    counts = f"  {done}/{len(stages)} stages done" + (f", {running} running" if running else "")
    counts += f", {retrying} waiting to retry" if retrying else ""
    progress = Table.grid(padding=(0, 1))
    progress.add_row(ProgressBar(total=max(len(stages), 1), completed=done, width=40), Text(counts))
    parts: list[RenderableType] = [headline, progress, timeline_table(run, now), Text(LEGEND, style="dim")]
    return Group(*parts)
