"""`cloudact runs cancel | rerun` and `cloudact backfill`: the API's run operations from the terminal.

Each goes through the tenant's API (a running `cloudact ui` when there is one, else the embedded runtime in this
process: shared/cli/local_api.py) with the local key of the run's tenant, so it does exactly what the routes do.
"""

from __future__ import annotations

import sys
import time
from datetime import date
from typing import Any

import click

from shared.cli import render
from shared.cli.local_api import EmbeddedApi, RemoteApi, local_api
from shared.contracts.states import RERUNNABLE, RunStatus


def _settings() -> Any:
    from shared.runtime.settings import Settings

    return Settings.from_env()


def _run_tenant(api: RemoteApi | EmbeddedApi, run_id: str) -> str:
    from shared.cli.embedded_run import unknown_tenant_message
    from shared.contracts.state_paths import run_path

    run = api.state.get(run_path(run_id)) if run_id.startswith("run_") else None
    if run is None:
        raise click.ClickException(f"no run {run_id!r} (see `cloudact runs list`)")
    tenant_id = str(run["tenant_id"])
    problem = unknown_tenant_message(api, tenant_id)
    if problem is not None:
        raise click.ClickException(problem)
    return tenant_id


def _refused(response: Any) -> click.ClickException:
    body = response.body if isinstance(response.body, dict) else {}
    return click.ClickException(f"{response.status} {body.get('error')}: {body.get('message')}")


@click.command("cancel")
@click.argument("run_id")
def runs_cancel(run_id: str) -> None:
    """Cancel a QUEUED or RUNNING run: queued stages are cancelled, running ones finish and are discarded."""
    from shared.cli.embedded_run import tenant_headers

    with local_api(_settings()) as api:
        tenant_id = _run_tenant(api, run_id)
        path = f"/api/v1/tenants/{tenant_id}/metadata/executions/{run_id}/cancel"
        response = api.call("POST", path, {}, headers=tenant_headers(api, tenant_id))
        if response.status >= 400:
            raise _refused(response)
        render.run_detail(response.body)


@click.command("rerun")
@click.argument("run_id")
@click.option(
    "--from-failure", is_flag=True, help="Carry over the stages that SUCCEEDED and run the rest (a failed run only)."
)
@click.option("--idempotency-key", default=None, help="Same key, same re-run: a repeat does not start another.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for the new run to end.")
@click.option("--quiet", is_flag=True, help="Print only the summary.")
def runs_rerun(run_id: str, from_failure: bool, idempotency_key: str | None, timeout: float, quiet: bool) -> None:
    """Run a finished run's pipeline again with the same parameters, and follow the new run."""
    from shared import logs
    from shared.cli.embedded_run import follow_run, tenant_headers

    logs.configure(level="WARNING")
    with local_api(_settings()) as api:
        tenant_id = _run_tenant(api, run_id)
        body: dict[str, Any] = {"from_failure": from_failure}
        if idempotency_key:
            body["idempotency_key"] = idempotency_key
        started = time.monotonic()
        path = f"/api/v1/tenants/{tenant_id}/metadata/executions/{run_id}/rerun"
        response = api.call("POST", path, body, headers=tenant_headers(api, tenant_id))
        if response.status >= 400:
            raise _refused(response)
        new_run = response.body["run_id"]
        how = "from its failure (succeeded stages carried over)" if from_failure else "in full"
        render.console.print(f"run [bold]{new_run}[/] re-runs {run_id} {how} ({response.status})")
        status = follow_run(api, new_run, started, timeout, quiet)
    sys.exit(0 if status == RunStatus.SUCCEEDED else 1)


@click.command("backfill")
@click.argument("tenant_id")
@click.argument("pipeline_id")
@click.option("--from", "start", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First date (YYYY-MM-DD).")
@click.option("--to", "end", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Last date, inclusive.")
@click.option("--max-active", default=16, show_default=True, type=click.IntRange(1, 366), help="Runs at once.")
@click.option("--param", "params", multiple=True, help="Parameter for every date as KEY=VALUE (JSON values allowed).")
@click.option("--backfill-id", default="default", show_default=True, help="Repeat with the same id to resume/retry.")
@click.option("--no-wait", is_flag=True, help="Start what may start and return (the maintenance tick starts the rest).")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to follow the backfill.")
def backfill_cmd(
    tenant_id: str,
    pipeline_id: str,
    start: Any,
    end: Any,
    max_active: int,
    params: tuple[str, ...],
    backfill_id: str,
    no_wait: bool,
    timeout: float,
) -> None:
    """One run per date from --from to --to, at most --max-active at once; a repeat retries the failed dates."""
    from shared import logs
    from shared.cli.embedded_run import tenant_headers, unknown_tenant_message
    from shared.cli.main import _parse_params

    logs.configure(level="WARNING")
    body: dict[str, Any] = {
        "start_date": date.isoformat(start.date()),
        "end_date": date.isoformat(end.date()),
        "parameters": _parse_params(params),
        "backfill_id": backfill_id,
        "max_active_runs": max_active,
    }
    with local_api(_settings()) as api:
        problem = unknown_tenant_message(api, tenant_id)
        if problem is not None:
            raise click.ClickException(problem)
        path = f"/api/v1/tenants/{tenant_id}/pipelines/{pipeline_id}/backfill"
        headers = tenant_headers(api, tenant_id)
        response = api.call("POST", path, body, headers=headers)
        if response.status >= 400:
            raise _refused(response)
        state = response.body
        if state.get("retried_dates"):
            render.console.print(
                f"retrying {len(state['retried_dates'])} failed date(s): {', '.join(state['retried_dates'])}"
            )
        deadline = time.monotonic() + timeout
        seen: dict[str, str] = {}
        while True:
            _print_changes(state, seen)
            if no_wait or _finished(state) or time.monotonic() > deadline:
                break
            api.settle(0.2)
            # follow-ups only start waiting dates (as runs finish); they never retry what just failed
            response = api.call("POST", path, {**body, "retry_failed": False}, headers=headers)
            if response.status >= 400 and response.status != 429:
                raise _refused(response)
            state = response.body if response.status < 400 else state
    _summary(state)
    sys.exit(0 if state.get("succeeded") else 1)


def _finished(state: dict[str, Any]) -> bool:
    return bool(state.get("complete")) and not state.get("active_runs")


def _print_changes(state: dict[str, Any], seen: dict[str, str]) -> None:
    for run in state.get("runs", []):
        key = f"{run['run_id']}:{run['status']}"
        if seen.get(run["run_date"]) != key:
            seen[run["run_date"]] = key
            attempt = f"  attempt {run['attempt']}" if run.get("attempt", 1) > 1 else ""
            render.console.print(
                f"  {run['run_date']}  {render.styled(str(run['status']), 10)} {run['run_id']}{attempt}"
            )


def _summary(state: dict[str, Any]) -> None:
    runs = state.get("runs", [])
    counts: dict[str, int] = {}
    for run in runs:
        counts[str(run["status"])] = counts.get(str(run["status"]), 0) + 1
    parts = [f"{n} {status}" for status, n in sorted(counts.items())]
    waiting = state.get("pending_dates") or []
    if waiting:
        parts.append(f"{len(waiting)} waiting ({waiting[0]} .. {waiting[-1]})")
    render.console.rule("backfill")
    render.console.print(
        f"  {state.get('pipeline_id')} backfill {state.get('backfill_id')}: {', '.join(parts) or 'nothing'} "
        f"(max {state.get('max_active_runs')} at once)"
    )
    if "stopped_because" in state:
        render.console.print(f"  [yellow]stopped: {state['stopped_because']['message']}[/]")
    failed = [r for r in runs if r["status"] in RERUNNABLE]
    if failed:
        render.console.print("  repeat the same command to retry the failed dates")
