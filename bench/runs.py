"""Starting a run through the embedded API and waiting for it: the steps the benchmark cases share."""

from __future__ import annotations

import time
from typing import Any


def execute(runtime: Any, tenant_id: str, pipeline_id: str, headers: dict[str, str]) -> str:
    """POST execute as the tenant; the new run's id (RuntimeError unless 202)."""
    response = runtime.call_api(
        "POST", f"/api/v1/tenants/{tenant_id}/pipelines/execute", {"pipeline_id": pipeline_id}, headers
    )
    if response.status != 202:
        raise RuntimeError(f"execute {tenant_id}/{pipeline_id}: {response.status} {response.body}")
    return str(response.body["run_id"])


def wait_terminal(runtime: Any, run_id: str, timeout_s: float, poll_s: float = 0.01) -> tuple[float, dict[str, Any]]:
    """Poll the run document until it is terminal: (time.perf_counter() when seen, the run document). For runs that
    leave the bus idle before they end (a job waiting for its completion event), where waiting for idle is wrong."""
    from shared.contracts.state_paths import run_path
    from shared.contracts.states import is_terminal

    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        run = runtime.context.state.get(run_path(run_id)) or {}
        if is_terminal(run.get("status")):
            return time.perf_counter(), run
        time.sleep(poll_s)
    raise RuntimeError(f"run {run_id} did not end in {timeout_s:.0f} s")


def succeeded_run(runtime: Any, tenant_id: str, run_id: str, headers: dict[str, str]) -> dict[str, Any]:
    """The run with its stages as the API shows it (RuntimeError unless SUCCEEDED)."""
    run = runtime.call_api("GET", f"/api/v1/tenants/{tenant_id}/metadata/executions/{run_id}", headers=headers).body
    if run.get("status") != "SUCCEEDED":
        raise RuntimeError(f"run {run_id} ended {run.get('status')}: {run.get('error')}")
    return dict(run)
