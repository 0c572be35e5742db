"""`cloudact run` / `cloudact demo`: trigger through the api function, follow the stages, print a summary."""

from __future__ import annotations

import time
from typing import Any

from shared.cli.render import console, run_detail, stage_line
from shared.runtime.settings import Settings


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
    from shared.notify.summary import run_notifications_line
    from shared.runs.machine import run_path
    from shared.runs.store import list_stages, public_run
    from shared.runtime import embedded

    logs.configure(level="WARNING")
    runtime = embedded.start(settings)
    try:
        body: dict[str, Any] = {"pipeline_id": pipeline_id, "parameters": parameters}
        if idempotency_key:
            body["idempotency_key"] = idempotency_key
        started = time.monotonic()
        headers = {"X-User-ID": "cli"}
        if tenant_id in runtime.api_keys:  # the key the embedded runtime keeps for each tenant_configs/ tenant
            headers["X-API-Key"] = runtime.api_keys[tenant_id]
        response = runtime.call_api("POST", f"/api/v1/tenants/{tenant_id}/pipelines/execute", body, headers=headers)
        if response.status >= 400:
            console.print(f"[red]{response.status} {response.body['error']}[/]: {response.body['message']}")
            return "REJECTED"
        run_id = response.body["run_id"]
        if not quiet:
            console.print(f"run [bold]{run_id}[/] {tenant_id}/{pipeline_id} accepted ({response.status})")
        seen: dict[str, str] = {}
        state = runtime.context.state
        while True:
            idle = runtime.wait_idle(0.05)
            if not quiet:
                run_now = state.get(run_path(run_id)) or {}
                order = {sid: i for i, sid in enumerate(run_now.get("stage_order") or [])}
                for stage in sorted(list_stages(state, run_id), key=lambda s: order.get(s["stage_id"], 0)):
                    if seen.get(stage["stage_id"]) != stage["status"] and stage["status"] != "QUEUED":
                        seen[stage["stage_id"]] = stage["status"]
                        console.print(stage_line(stage))
            if idle or time.monotonic() - started > timeout:
                break
        run = state.get(run_path(run_id)) or {}
        console.rule("summary")
        run_detail(public_run(run, list_stages(state, run_id)))
        console.print(f"  wall time: {time.monotonic() - started:.3f} s   history: cloudact runs show {run_id}")
        console.print(run_notifications_line(runtime.context, run_id), soft_wrap=True, markup=False)
        return str(run.get("status"))
    finally:
        runtime.close()
