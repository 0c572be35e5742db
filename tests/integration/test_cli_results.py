"""Seeing results from the terminal after a local run: `cloudact tables`, `cloudact query` (tenant-scoped, read-only,
the pipelines' SQL rules, row limit, --json) and `cloudact runs show --preview`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from shared.cli.main import cli
from shared.runtime.settings import Settings
from tests.conftest import run_to_end


@pytest.fixture
def finished_run(runtime: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A SUCCEEDED warehouse_rows run (n=30) of testco; the runtime is closed so the CLI can open the local files."""
    run = run_to_end(runtime, "testco", "warehouse_rows", parameters={"n": 30})
    assert run["status"] == "SUCCEEDED"
    runtime.close()
    monkeypatch.setenv("CLOUDACT_HOME", str(settings.home))
    monkeypatch.setenv("CLOUDACT_CONFIG_DIR", str(settings.config_dir))
    yield str(run["run_id"])


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_tables_lists_datasets_and_tables_with_row_counts(finished_run: str) -> None:
    result = invoke("tables", "testco", "work", "--json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert listed["datasets"] == ["testco_work"]
    assert {t["table"]: t["rows"] for t in listed["tables"]} == {"both": 30, "evens": 15, "numbers": 30, "odds": 15}
    with_internal = json.loads(invoke("tables", "testco", "testco_work", "--json", "--all").output)
    assert "_cloudact_append_log" in {t["table"] for t in with_internal["tables"]}  # `both` appends
    text = invoke("tables", "testco").output
    assert "testco_metadata" in text and "pipeline_executions" in text and "hidden (--all)" in text
    missing = invoke("tables", "testco", "nope")
    assert missing.exit_code == 1 and "has no dataset 'testco_nope'" in missing.output


def test_tables_of_a_tenant_without_a_local_warehouse_says_so(finished_run: str) -> None:
    result = invoke("tables", "nobody")
    assert result.exit_code == 1 and "has no local warehouse yet" in result.output


def test_query_prints_rows_with_a_limit_and_as_json(finished_run: str) -> None:
    sql = "SELECT n, MOD(n, 3) AS r FROM {tenant_id}_work.numbers WHERE n <= 10 ORDER BY n"
    result = invoke("query", "testco", sql, "--limit", "4", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["columns"] == [{"name": "n", "type": "int64"}, {"name": "r", "type": "int64"}]
    assert body["rows"] == [{"n": n, "r": n % 3} for n in range(1, 5)] and body["truncated"] is True
    text = invoke("query", "testco", "SELECT COUNT(*) AS total FROM testco_work.both")
    assert text.exit_code == 0 and "30" in text.output and "1 row(s)" in text.output


@pytest.mark.parametrize(
    ("sql", "refusal"),
    [
        ("SELECT * FROM acme_sales.orders", "dataset `acme_sales` is not one of this tenant's datasets"),
        ("DELETE FROM testco_work.numbers WHERE TRUE", "only a SELECT query may run here, not DELETE"),
        ("SELECT 1 AS a; SELECT 2 AS b", "one statement only"),
        ("SELECT * FROM read_csv('/etc/passwd')", "not allowed"),
        ("SELECT * FROM numbers", "needs its dataset"),
    ],
)
def test_query_refuses_what_a_pipeline_step_may_not_run(finished_run: str, sql: str, refusal: str) -> None:
    result = CliRunner().invoke(cli, ["query", "testco", sql])
    assert result.exit_code == 2 and refusal in result.output, result.output
    assert json.loads(invoke("tables", "testco", "work", "--json").output)["tables"][2]["rows"] == 30  # untouched


def test_runs_show_preview_prints_each_stage_output(finished_run: str) -> None:
    result = invoke("runs", "show", finished_run, "--preview", "--limit", "2")
    assert result.exit_code == 0, result.output
    for stage, table, total in (("numbers", "numbers", 30), ("evens", "evens", 15), ("both", "both", 30)):
        assert f"{stage} -> testco_work.{table}  (2 of {total} row(s))" in result.output
    assert result.output.index("numbers -> ") < result.output.index("evens -> ") < result.output.index("both -> ")
