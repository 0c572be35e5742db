"""`cloudact tables` and `cloudact query` on both warehouses: the tenant's DuckDB file, and BigQuery's API (bqemulator)
as `CLOUDACT_WAREHOUSE=bigquery` reaches it on GCP. Same listing, same rows, same refusals."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from shared.cli.main import cli
from tests.processor_support import BQ_PROJECT, engine_fixture, open_warehouse  # noqa: F401


@pytest.fixture
def tenant(engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A tenant of its own (bqemulator is shared) with `{tenant}_sales.orders` (3 rows), and the CLI's environment."""
    tenant_id = f"cli{uuid.uuid4().hex[:10]}"
    home = tmp_path / "home"
    (home / "warehouse").mkdir(parents=True)
    (tmp_path / "tenant_configs" / tenant_id).mkdir(parents=True)
    wh = open_warehouse(engine, home / "warehouse" / f"{tenant_id}.duckdb")
    wh.execute(f"CREATE SCHEMA IF NOT EXISTS {tenant_id}_sales")
    wh.execute(
        f"CREATE TABLE {tenant_id}_sales.orders AS "
        "SELECT n AS order_id, IF(MOD(n, 2) = 0, 'emea', 'amer') AS region FROM UNNEST([1, 2, 3]) AS n"
    )
    if engine == "duckdb":
        wh.close()  # the CLI opens the file itself
    monkeypatch.setenv("CLOUDACT_HOME", str(home))
    monkeypatch.setenv("CLOUDACT_CONFIG_DIR", str(tmp_path / "tenant_configs"))
    monkeypatch.setenv("CLOUDACT_WAREHOUSE", engine)
    monkeypatch.setenv("CLOUDACT_PROJECT", BQ_PROJECT)
    yield tenant_id
    if engine == "bigquery":
        wh.execute(f"DROP SCHEMA IF EXISTS {tenant_id}_sales CASCADE")
        wh.close()


def test_tables_and_query_answer_the_same_on_both_warehouses(tenant: str) -> None:
    listed = CliRunner().invoke(cli, ["tables", tenant, "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output)["tables"] == [
        {"dataset": f"{tenant}_sales", "table": "orders", "kind": "table", "rows": 3}
    ]
    sql = "SELECT region, COUNT(*) AS n FROM {tenant_id}_sales.orders GROUP BY region ORDER BY region"
    rows = CliRunner().invoke(cli, ["query", tenant, sql, "--json"])
    assert rows.exit_code == 0, rows.output
    assert json.loads(rows.output)["rows"] == [{"region": "amer", "n": 2}, {"region": "emea", "n": 1}]
    refused = CliRunner().invoke(cli, ["query", tenant, f"DROP TABLE {tenant}_sales.orders"])
    assert refused.exit_code == 2 and "only a SELECT query may run here" in refused.output
    again = CliRunner().invoke(cli, ["tables", tenant, "sales", "--json"])
    assert json.loads(again.output)["tables"][0]["rows"] == 3
