"""The data-quality table of a run whose quality.check stage FAILED, for `cloudact runs show`.

A failing check raises, so the stage records only its error; the results themselves are in the warehouse
(`{tenant}_metadata.dq_results`). They are read through the tenant's API route (GET .../quality), on a running
`cloudact ui` when there is one (it holds the DuckDB files), else on an embedded runtime started for it.
"""

from __future__ import annotations

from typing import Any

from shared.contracts.states import StageStatus
from shared.runtime.settings import Settings

RESULT_FIELDS = ("check_name", "check_type", "severity", "status", "failed_rows", "message")


def stages_missing_results(view: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        stage
        for stage in view.get("stages", [])
        if stage.get("ps_type") == "quality.check"
        and stage.get("status") == StageStatus.FAILED
        and not (stage.get("details") or {}).get("results")
    ]


def fill_failed_quality_results(settings: Settings, view: dict[str, Any]) -> str | None:
    """Put the recorded results into each failed quality.check stage of `view`; a note when they cannot be read."""
    missing = stages_missing_results(view)
    if not missing:
        return None
    from shared.cli.embedded_run import tenant_headers, unknown_tenant_message
    from shared.cli.local_api import local_api

    tenant_id, run_id = str(view["tenant_id"]), str(view["run_id"])
    with local_api(settings) as api:
        problem = unknown_tenant_message(api, tenant_id)
        if problem is not None:
            return f"  data quality: not shown ({problem})"
        path = f"/api/v1/tenants/{tenant_id}/metadata/executions/{run_id}/quality"
        response = api.call("GET", path, headers=tenant_headers(api, tenant_id))
    if response.status != 200:
        return f"  data quality: not shown ({response.status} {response.body.get('message')})"
    for stage in missing:
        results = [
            {k: r.get(k) for k in RESULT_FIELDS} for r in response.body["results"] if r["step_id"] == stage["stage_id"]
        ]
        stage["details"] = {**(stage.get("details") or {}), "results": results}
    return None
