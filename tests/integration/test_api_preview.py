"""Seeing results through the API on the embedded runtime: a stage's output preview (runs:read, the key's own tenant
only), and execute's 400 for SQL the local warehouse cannot run, at the query's file:line:col."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import auth, execute, run_to_end


def key_with(runtime: Any, tenant: str, scope: str) -> dict[str, str]:
    made = runtime.call_api(
        "POST", f"/api/v1/tenants/{tenant}/api-keys", {"name": scope.replace(":", "_"), "scopes": [scope]},
        auth(runtime, tenant),
    )  # fmt: skip
    assert made.status == 201, made.body
    return {"X-API-Key": made.body["api_key"]}


def preview_path(tenant: str, run_id: str, stage_id: str) -> str:
    return f"/api/v1/tenants/{tenant}/metadata/executions/{run_id}/stages/{stage_id}/preview"


def test_preview_returns_the_first_rows_of_each_stage_output(runtime: Any) -> None:
    run = run_to_end(runtime, "testco", "warehouse_rows", parameters={"n": 30})
    assert run["status"] == "SUCCEEDED"
    reader = key_with(runtime, "testco", "runs:read")
    got = runtime.call_api("GET", preview_path("testco", run["run_id"], "evens"), headers=reader, query={"limit": "4"})
    assert got.status == 200, got.body
    assert got.body["table"] == "testco_work.evens" and got.body["exists"] is True
    assert got.body["columns"] == [{"name": "n", "type": "int64"}]
    assert len(got.body["rows"]) == 4 and all(r["n"] % 2 == 0 for r in got.body["rows"])
    assert got.body["total_rows"] == 15 and got.body["limit"] == 4
    default = runtime.call_api("GET", preview_path("testco", run["run_id"], "both"), headers=reader)
    assert len(default.body["rows"]) == 10 and default.body["total_rows"] == 30


def test_preview_needs_runs_read_and_the_runs_own_tenant(runtime: Any) -> None:
    run = run_to_end(runtime, "testco", "warehouse_rows", parameters={"n": 3})
    path = preview_path("testco", run["run_id"], "evens")
    executor = key_with(runtime, "testco", "pipelines:execute")
    refused = runtime.call_api("GET", path, headers=executor)
    assert refused.status == 403 and refused.body["details"]["scope"] == "runs:read"
    assert runtime.call_api("GET", path, headers=auth(runtime, "acme")).status == 403  # another tenant's key
    # acme's own route with testco's run id: the run is not acme's, so it does not exist for acme
    other = runtime.call_api("GET", preview_path("acme", run["run_id"], "evens"), headers=auth(runtime, "acme"))
    assert other.status == 404 and other.body["details"]["field"] == "run_id"
    missing = runtime.call_api("GET", preview_path("testco", run["run_id"], "nope"), headers=auth(runtime, "testco"))
    assert missing.status == 404 and missing.body["details"]["field"] == "stage_id"
    bad = runtime.call_api("GET", path, headers=auth(runtime, "testco"), query={"limit": "1000"})
    assert bad.status == 400 and bad.body["details"]["field"] == "limit"


def test_preview_of_a_stage_without_a_table_says_so(runtime: Any) -> None:
    run = run_to_end(runtime, "testco", "fan_join")
    stage_id = run["stages"][0]["stage_id"]
    got = runtime.call_api("GET", preview_path("testco", run["run_id"], stage_id), headers=auth(runtime, "testco"))
    assert got.status == 200 and got.body["table"] is None and got.body["rows"] == []


def test_execute_refuses_sql_the_local_warehouse_cannot_translate_at_its_line(runtime: Any) -> None:
    path = Path(runtime.settings.config_dir) / "testco" / "pipelines" / "soundex.yaml"
    path.write_text(
        "pipeline_id: soundex\nsteps:\n  - step_id: a\n    ps_type: bigquery.query\n"
        "    source: {query: \"SELECT SOUNDEX('x') AS s\"}\n    destination: {dataset: work, table: s}\n"
    )
    refused = execute(runtime, "testco", "soundex")
    assert refused.status == 400 and refused.body["details"]["field"] == "pipeline_id"
    (issue,) = refused.body["details"]["issues"]
    assert issue.startswith("tenant_configs/testco/pipelines/soundex.yaml:5:29: steps[0].source.query: ")
    assert "SOUNDEX" in issue
    assert runtime.context.state.list("runs") == []  # refused before admission: no run, no quota used
