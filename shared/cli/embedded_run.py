"""`cloudact run` / `cloudact demo`: trigger through the api function, follow the stages, print a summary.

The request goes to a running `cloudact ui` when there is one (it holds the DuckDB warehouse), else to an embedded
runtime started in this process (shared/cli/local_api.py); either way the stages are followed in the state store.
"""

from __future__ import annotations

import time
from typing import Any

from shared.cli.local_api import EmbeddedApi, RemoteApi, local_api
from shared.cli.render import console, run_detail, stage_line
from shared.runtime.settings import Settings

NOTIFY_GRACE_S = 1.5
"""After a run handled by a `cloudact ui` server ends, how long to wait for its notifications to be delivered."""


def unknown_tenant_message(api: RemoteApi | EmbeddedApi, tenant_id: str) -> str | None:
    """Why the CLI cannot act for `tenant_id`, or None when it can (it holds a key of that tenant)."""
    if tenant_id in api.api_keys:
        return None
    from shared.tenancy.tenants import TENANT_ID, tenant_path

    known = ", ".join(sorted(api.api_keys)) or "none: add a folder to tenant_configs/"
    if TENANT_ID.match(tenant_id) and api.state.get(tenant_path(tenant_id)) is not None:
        return (
            f"tenant {tenant_id} exists but this CLI holds no key for it (it holds keys for: {known}); "
            f"add tenant_configs/{tenant_id}/ or call the API with a key from `cloudact keys create {tenant_id}`"
        )
    return f"unknown tenant {tenant_id} (known: {known})"


def tenant_headers(api: RemoteApi | EmbeddedApi, tenant_id: str) -> dict[str, str]:
    return {"X-User-ID": "cli", "X-API-Key": api.api_keys[tenant_id]}


def run_and_follow(
    settings: Settings,
    tenant_id: str,
    pipeline_id: str,
    parameters: dict[str, Any],
    idempotency_key: str | None,
    timeout: float,
    quiet: bool,
) -> str:
    from shared import logs

    logs.configure(level="WARNING")
    with local_api(settings) as api:
        problem = unknown_tenant_message(api, tenant_id)
        if problem is not None:
            console.print(f"[red]{problem}[/]", soft_wrap=True)
            return "REJECTED"
        body: dict[str, Any] = {"pipeline_id": pipeline_id, "parameters": parameters}
        if idempotency_key:
            body["idempotency_key"] = idempotency_key
        started = time.monotonic()
        response = api.call(
            "POST", f"/api/v1/tenants/{tenant_id}/pipelines/execute", body, headers=tenant_headers(api, tenant_id)
        )
        if response.status >= 400:
            console.print(f"[red]{response.status} {response.body['error']}[/]: {response.body['message']}")
            return "REJECTED"
        run_id = response.body["run_id"]
        if not quiet:
            where = f" by {api.server_url}" if api.server_url else ""
            console.print(f"run [bold]{run_id}[/] {tenant_id}/{pipeline_id} accepted ({response.status}){where}")
        return follow_run(api, run_id, started, timeout, quiet)


def follow_run(api: RemoteApi | EmbeddedApi, run_id: str, started: float, timeout: float, quiet: bool) -> str:
    """Print each stage as it changes until the run is over, then the summary; returns the run's status."""
    from shared.contracts.state_paths import run_path
    from shared.contracts.states import StageStatus, is_terminal
    from shared.notify.summary import deliveries_line
    from shared.runs.store import list_stages, public_run

    state = api.state
    seen: dict[str, str] = {}
    ended_at: float | None = None
    while True:
        idle = api.settle(0.05)
        run_now = state.get(run_path(run_id)) or {}
        if not quiet:
            order = {sid: i for i, sid in enumerate(run_now.get("stage_order") or [])}
            for stage in sorted(list_stages(state, run_id), key=lambda s: order.get(s["stage_id"], 0)):
                if seen.get(stage["stage_id"]) != stage["status"] and stage["status"] != StageStatus.QUEUED:
                    seen[stage["stage_id"]] = stage["status"]
                    console.print(stage_line(stage))
        if api.server_url is not None and is_terminal(str(run_now.get("status"))) and run_now.get("finalized"):
            # another process runs it: its notifier works asynchronously, give it a moment to record deliveries
            ended_at = ended_at or time.monotonic()
            idle = _deliveries_settled(state, run_id) or time.monotonic() - ended_at > NOTIFY_GRACE_S
        if idle or time.monotonic() - started > timeout:
            break
    run = state.get(run_path(run_id)) or {}
    console.rule("summary")
    run_detail(public_run(run, list_stages(state, run_id)))
    console.print(f"  wall time: {time.monotonic() - started:.3f} s   history: cloudact runs show {run_id}")
    console.print(deliveries_line(state, run_id), soft_wrap=True, markup=False)
    return str(run.get("status"))


def _deliveries_settled(state: Any, run_id: str) -> bool:
    from shared.notify.summary import run_deliveries

    deliveries = run_deliveries(state, run_id)
    return bool(deliveries) and all(d.get("status") not in ("queued", "retrying") for d in deliveries)
