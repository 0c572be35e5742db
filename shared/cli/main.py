"""`cloudact`: run pipelines on the embedded runtime and inspect run history. Heavy imports happen inside commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from shared.cli import render
from shared.cli.dead_letters import dead_letters_group
from shared.cli.notifications import notifications_group
from shared.cli.pipelines import pipelines_group
from shared.cli.query import query_cmd
from shared.cli.run_operations import backfill_cmd, runs_cancel, runs_rerun
from shared.cli.samples import sample_data_group
from shared.cli.schedule import schedule_group
from shared.cli.steps import steps_cmd
from shared.cli.tables import tables_cmd
from shared.cli.tenants import keys_group, secrets_group, tenants_group
from shared.cli.ui import ui_cmd
from shared.contracts.states import RunStatus


def _settings() -> Any:
    from shared.runtime.settings import Settings

    return Settings.from_env()


def _parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--param")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


@click.group()
@click.version_option(package_name="convergence-data-pipeline")
def cli() -> None:
    """Convergence Data Pipeline: multi-tenant pipelines on Cloud Functions + Pub/Sub (embedded runtime locally)."""


@cli.command("run")
@click.argument("tenant_id")
@click.argument("pipeline_id")
@click.option("--param", "params", multiple=True, help="Pipeline parameter as KEY=VALUE (JSON values allowed).")
@click.option("--idempotency-key", default=None, help="Same key, same run: a repeat does not start a second run.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for the run to end.")
@click.option("--quiet", is_flag=True, help="Print only the summary.")
def run_cmd(
    tenant_id: str, pipeline_id: str, params: tuple[str, ...], idempotency_key: str | None, timeout: float, quiet: bool
) -> None:
    """Run a tenant's pipeline end to end on the embedded runtime and print its stages as they progress."""
    from shared.cli.embedded_run import run_and_follow

    status = run_and_follow(_settings(), tenant_id, pipeline_id, _parse_params(params), idempotency_key, timeout, quiet)
    sys.exit(0 if status == RunStatus.SUCCEEDED else 1)


@cli.command("demo")
def demo_cmd() -> None:
    """Run the sample tenant's sample pipeline (acme / daily_sales) on the embedded runtime."""
    from shared.cli.embedded_run import run_and_follow

    status = run_and_follow(_settings(), "acme", "daily_sales", {}, None, 600.0, False)
    render.console.print("  in the browser: .venv/bin/cloudact ui  ->  http://127.0.0.1:8765/ui/?tenant=acme")
    sys.exit(0 if status == RunStatus.SUCCEEDED else 1)


@cli.group("runs")
def runs_group() -> None:
    """Run history (state under .cloudact/ on the embedded runtime)."""


@runs_group.command("list")
@click.option("--tenant", "tenant_id", default=None)
@click.option("--status", default=None)
@click.option("--pipeline", "pipeline_id", default=None)
@click.option("--limit", default=20, show_default=True)
def runs_list(tenant_id: str | None, status: str | None, pipeline_id: str | None, limit: int) -> None:
    from shared.runs.store import list_runs
    from shared.runtime.context import build_state

    state = build_state(_settings())
    render.runs_table(list_runs(state, tenant_id, status, pipeline_id, limit))


@runs_group.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the run document as JSON.")
@click.option("--preview", is_flag=True, help="Also print the first rows of the table each stage wrote.")
@click.option("--limit", default=5, show_default=True, type=click.IntRange(1, 100), help="Rows per stage (--preview).")
def runs_show(run_id: str, as_json: bool, preview: bool, limit: int) -> None:
    """A run with its stage timeline (one bar per attempt), data-quality results and where notifications went."""
    from shared.cli.watch import RunNotFound, load_run
    from shared.notify.summary import run_notifications_line
    from shared.runtime.context import Context

    ctx = Context(_settings())
    try:
        view = load_run(ctx.state, run_id)
        if as_json:
            click.echo(json.dumps(view, indent=2, default=str))
            return
        from shared.cli.run_quality import fill_failed_quality_results

        note = fill_failed_quality_results(ctx.settings, view)  # a failed check's table is in the warehouse only
        render.run_detail(view)
        if note:
            render.console.print(note, soft_wrap=True, markup=False)
        render.console.print(run_notifications_line(ctx, run_id), soft_wrap=True, markup=False)
        if preview:
            from shared.cli.tables import print_stage_previews

            print_stage_previews(ctx, run_id, limit)
    except RunNotFound:
        raise click.ClickException(f"no run {run_id!r}") from None
    finally:
        ctx.close()


@runs_group.command("watch")
@click.argument("run_id")
@click.option("--interval", default=0.5, show_default=True, help="Seconds between reads of the run.")
@click.option("--timeout", default=None, type=float, help="Stop watching after this many seconds (exit 2).")
def runs_watch(run_id: str, interval: float, timeout: float | None) -> None:
    """Follow a live run with a progress display until it ends; exit 0 if it SUCCEEDED, 1 otherwise."""
    from shared.cli.watch import TIMED_OUT_WATCHING, RunNotFound, watch_run
    from shared.runtime.context import build_state

    state = build_state(_settings())
    try:
        status = watch_run(state, run_id, render.console, interval, timeout)
    except RunNotFound:
        raise click.ClickException(f"no run {run_id!r}") from None
    finally:
        state.close()
    if status == TIMED_OUT_WATCHING:
        render.console.print(f"[yellow]still running after {timeout:g} s[/]: cloudact runs watch {run_id}")
        sys.exit(2)
    sys.exit(0 if status == RunStatus.SUCCEEDED else 1)


@cli.group("contracts")
def contracts_group() -> None:
    """Message contracts."""


@contracts_group.command("export")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Folder (default: the package's schemas/).")
def contracts_export(out: Path | None) -> None:
    """Write the JSON Schema of every message contract."""
    from shared.contracts.messages import json_schemas

    folder = out or Path(__file__).resolve().parents[1] / "contracts" / "schemas"
    folder.mkdir(parents=True, exist_ok=True)
    for name, schema in json_schemas().items():
        (folder / name).write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    click.echo(f"wrote {len(json_schemas())} schemas to {folder}")


cli.add_command(pipelines_group)
cli.add_command(schedule_group)
cli.add_command(notifications_group)
cli.add_command(sample_data_group)
cli.add_command(tenants_group)
cli.add_command(keys_group)
cli.add_command(secrets_group)
cli.add_command(ui_cmd)
cli.add_command(dead_letters_group)
cli.add_command(tables_cmd)
cli.add_command(query_cmd)
cli.add_command(steps_cmd)
cli.add_command(backfill_cmd)
runs_group.add_command(runs_cancel)
runs_group.add_command(runs_rerun)


def main() -> None:
    cli()
