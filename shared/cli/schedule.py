"""`cloudact schedule`: list the schedules and fire what is due locally; the embedded runtime plays Scheduler."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import click

from shared.cli import render
from shared.clock import utc_now
from shared.contracts.states import ACTIVE, RunStatus


def _parse_at(value: str | None) -> datetime:
    if value is None:
        return utc_now()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time (e.g. 2026-03-29T03:00:00+02:00)", param_hint="--at"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _when(slot: datetime | None) -> str:
    if slot is None:
        return "-"
    return f"{slot.isoformat(timespec='minutes')} ({slot.astimezone(UTC).strftime('%H:%M')} UTC)"


@click.group("schedule")
def schedule_group() -> None:
    """Pipeline schedules: list them, fire what is due (what Cloud Scheduler does in production)."""


@schedule_group.command("list")
@click.option("--at", "at_text", default=None, help="Evaluate as of this ISO 8601 time (default: now).")
@click.option("--tenant", "tenant_id", default=None)
def schedule_list(at_text: str | None, tenant_id: str | None) -> None:
    """Every scheduled pipeline with its last fired slot and its next one."""
    from shared.runtime.context import Context
    from shared.runtime.settings import Settings
    from shared.scheduling.local import scheduled_pipelines
    from shared.scheduling.trigger import last_fired

    at = _parse_at(at_text)
    settings = Settings.from_env()
    ctx = Context(settings)
    pipelines, problems = scheduled_pipelines(settings.config_dir, tenant_id)
    for problem in problems:
        click.echo(problem, err=True)
    if not pipelines:
        render.console.print("no scheduled pipelines (add `schedule: {cron: ..., timezone: ...}` to a pipeline)")
        return
    from rich.table import Table

    table = Table("tenant", "pipeline", "cron", "time zone", "misfire", "last fired", "next")
    for p in pipelines:
        s = p.schedule
        previous = last_fired(ctx, p.tenant_id, p.pipeline_id)
        table.add_row(
            p.tenant_id,
            p.pipeline_id,
            s.cron,
            s.timezone,
            s.misfire,
            _when(previous.astimezone(s.tz) if previous else None),
            _when(s.next_after(at)),
        )
    render.console.print(table)
    ctx.close()


@schedule_group.command("tick")
@click.option("--at", "at_text", default=None, help="Fire what is due at this ISO 8601 time (default: now).")
@click.option("--tenant", "tenant_id", default=None, help="Only this tenant's pipelines.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for the fired runs to end.")
def schedule_tick(at_text: str | None, tenant_id: str | None, timeout: float) -> None:
    """Publish the tick of every scheduled pipeline that is due, through the real scheduled_trigger function.

    Each pipeline's newest slot at or before --at fires once: run the command twice and the second finds the same
    runs. A pipeline with `misfire: catch_up` also fires the slots it missed since its last one.
    """
    from shared import logs
    from shared.app import embedded
    from shared.runtime.settings import Settings
    from shared.scheduling.local import fire_due

    at = _parse_at(at_text)
    logs.configure(level="WARNING")
    runtime = embedded.start(Settings.from_env())
    try:
        outcomes, problems, drained = fire_due(runtime, at, tenant_id, timeout)
    finally:
        runtime.close()
    for problem in problems:
        click.echo(problem, err=True)
    _print_outcomes(outcomes, at)
    if not drained:
        render.console.print(f"[yellow]runs still going after {timeout:g}s: see `cloudact runs list`[/]")
    failed = [r for o in outcomes for r in o.runs if r["status"] not in (RunStatus.SUCCEEDED, *ACTIVE)]
    sys.exit(1 if problems or failed else 0)


def _print_outcomes(outcomes: list[Any], at: datetime) -> None:
    from rich.table import Table

    if not outcomes:
        render.console.print("nothing scheduled")
        return
    table = Table("tenant", "pipeline", "slot", "run", "status", "")
    for outcome in outcomes:
        p = outcome.pipeline
        if not outcome.runs:
            table.add_row(p.tenant_id, p.pipeline_id, _when(outcome.slot), "-", "-", outcome.skipped_because)
        for run in outcome.runs:
            note = "new" if run["new"] else "already fired: same run"
            table.add_row(
                p.tenant_id,
                p.pipeline_id,
                _when(run["slot"]),
                run["run_id"] or "-",
                render.styled(run["status"]),
                note,
            )
    render.console.print(f"ticks as of {at.isoformat(timespec='seconds')}")
    render.console.print(table)
