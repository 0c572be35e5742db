"""Terminal rendering for the CLI (rich)."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from shared.cli.timeline import LEGEND, STATUS_STYLE, quality_table, stage_errors, timeline_table

console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
__all__ = ["STATUS_STYLE", "console", "run_detail", "runs_table", "stage_line", "styled", "timeline_width"]


def styled(status: str, width: int = 0) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status:<{width}}[/]"


def runs_table(runs: list[dict[str, Any]]) -> None:
    if not runs:
        console.print("no runs yet: try `cloudact demo`")
        return
    table = Table("run_id", "tenant", "pipeline", "status", "trigger", "created (UTC)", "duration")
    for run in runs:
        duration = f"{run['duration_ms'] / 1000:.2f}s" if run.get("duration_ms") is not None else "-"
        table.add_row(
            run["run_id"],
            run["tenant_id"],
            run["pipeline_id"],
            styled(run["status"]),
            (run.get("trigger") or {}).get("type", "-"),
            run.get("created_at", "")[:19].replace("T", " "),
            duration,
        )
    console.print(table)


def stage_line(stage: dict[str, Any]) -> str:
    status = str(stage["status"])
    parts = [f"  {styled(status, 10)}", f"{stage['stage_id']:<24}"]
    if stage.get("duration_ms") is not None:
        parts.append(f"{stage['duration_ms']:>7} ms")
    if stage.get("attempt", 0) > 1:
        parts.append(f"attempt {stage['attempt']}")
    if stage.get("rows_out") is not None:
        parts.append(f"{stage['rows_out']:>9,} rows")
    if stage.get("error"):
        parts.append(f"[red]{stage['error']}[/]")
    return "  ".join(parts)


def run_detail(run: dict[str, Any]) -> None:
    duration = f"{run['duration_ms']} ms" if run.get("duration_ms") is not None else "-"
    console.print(
        f"run [bold]{run['run_id']}[/]  {run['tenant_id']}/{run['pipeline_id']}  {styled(run['status'])}  {duration}"
    )
    if run.get("error"):
        console.print(f"  error: [red]{run['error']}[/]")
    if run.get("stages"):
        console.print(timeline_table(run, width=timeline_width()))
        console.print(Text(LEGEND, style="dim"))
        for line in stage_errors(run):
            console.print(line)
    quality = quality_table(run)
    if quality is not None:
        console.print("  data quality:")
        console.print(quality)
    rows = sum(int(s.get("rows_out") or 0) for s in run.get("stages", []))
    console.print(f"  rows written: {rows:,}")


def timeline_width() -> int:
    """The Gantt column gets what the other columns leave of the terminal (20..60 characters)."""
    return max(20, min(60, console.width - 80))
