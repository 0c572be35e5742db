"""SQL safety as a tenant would try to break it: values stay values, and a step reads only its own tenant's data.

Checked twice: when the YAML is validated (tests/data/bad_pipelines) and again on the exact SQL a run sends.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.errors import TerminalError
from shared.pipelines.spec import StepSpec
from shared.pipelines.sql_scope import QueryScopeError, render_checked_sql
from shared.pipelines.templating import TemplateError, render
from shared.processors.base import StepContext
from shared.processors.bigquery_query import SPEC
from shared.runtime.context import Context, get_context, set_context
from shared.runtime.settings import Settings
from tests.conftest import run_to_end

INJECTIONS = [
    "x' OR '1'='1",
    "emea'; DROP TABLE testco_shop.orders; --",
    "emea\\' UNION ALL SELECT 99 --",
    "@region",
]


@pytest.fixture
def shop_pipelines(config_dir: Path) -> Path:
    pipelines = config_dir / "testco" / "pipelines"
    (pipelines / "pick_region.yaml").write_text(
        """pipeline_id: pick_region
parameters: {region: {type: string, required: true}}
steps:
  - step_id: seed
    ps_type: bigquery.query
    source:
      query: |
        SELECT 1 AS id, 'emea' AS region UNION ALL
        SELECT 2, 'amer' UNION ALL
        SELECT 3, "x' OR '1'='1"
    destination: {dataset: shop, table: orders}
  - step_id: pick
    ps_type: bigquery.query
    depends_on: [seed]
    source: {query: "SELECT id, region FROM {tenant_id}_shop.orders WHERE region = @region"}
    destination: {dataset: shop, table: picked}
"""
    )
    (pipelines / "peek.yaml").write_text(
        """pipeline_id: peek
parameters: {area: {type: string, default: sales}}
steps:
  - step_id: copy
    ps_type: bigquery.query
    source: {query: "SELECT * FROM {tenant_id}_{area}.orders"}
    destination: {dataset: copies, table: orders}
"""
    )
    (config_dir / "testco_eu").mkdir()  # another tenant whose id starts with "testco_"
    return config_dir


@pytest.mark.parametrize("value", INJECTIONS)
def test_an_injection_attempt_through_a_parameter_stays_a_value(runtime: Any, shop_pipelines: Path, value: str) -> None:
    run = run_to_end(runtime, "testco", "pick_region", parameters={"region": value})
    assert run["status"] == "SUCCEEDED", run
    wh = runtime.context.warehouse_for("testco")
    picked = wh.query("SELECT id, region FROM testco_shop.picked ORDER BY id").to_pylist()
    # compared as one string: only the row holding exactly that text matches, nothing else ran
    assert picked == ([{"id": 3, "region": value}] if value == "x' OR '1'='1" else [])
    assert wh.query("SELECT COUNT(*) AS n FROM testco_shop.orders").column("n")[0].as_py() == 3


def test_a_cross_tenant_reference_made_at_run_time_is_refused(runtime: Any, shop_pipelines: Path) -> None:
    wh = runtime.context.warehouse_for("testco_eu")  # its own file: testco cannot name it
    wh.create_dataset("testco_eu_sales")  # tenant testco_eu's `sales` dataset
    wh.write_table("testco_eu_sales.orders", pa.table({"secret": ["eu only"]}))
    run = run_to_end(runtime, "testco", "peek", parameters={"area": "eu_sales"})
    assert run["status"] == "FAILED"
    stage = run["stages"][0]
    assert stage["status"] == "FAILED"
    assert "query refused" in stage["error"] and "belongs to tenant 'testco_eu'" in stage["error"]
    assert not wh.table_exists("testco_copies.orders")


# -- the processor on its own: the run-time check happens before any SQL runs --------------------------------------


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Settings]:
    for tenant in ("acme", "globex"):
        (tmp_path / "configs" / tenant).mkdir(parents=True)
    settings = Settings(project="cloudact-test", home=tmp_path / "home", config_dir=tmp_path / "configs")
    previous = set_context(Context(settings))
    yield settings
    set_context(previous)


def _ctx(wh: DuckDBWarehouse, **parameters: Any) -> StepContext:
    return StepContext(
        tenant_id="acme",
        pipeline_id="p",
        run_id="run_0000001",
        stage_id="s",
        attempt=1,
        run_date=date(2026, 11, 2),
        parameters=parameters,
        variables={},
        warehouse=wh,
        deadline_monotonic=time.monotonic() + 60,
        runtime=get_context(),
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELECT * FROM globex_sales.orders", "not one of this tenant's datasets"),
        ("SELECT * FROM `elsewhere.acme_sales.orders`", "project `elsewhere` is not allowed"),
        ("SELECT * FROM `region-us`.INFORMATION_SCHEMA.JOBS", "project/region-wide"),
        ("DROP TABLE acme_sales.orders", "only a SELECT query"),
        ("SELECT 1 AS x; DROP TABLE acme_sales.orders", "one statement only"),
    ],
)
def test_the_processor_refuses_out_of_scope_sql_before_running_anything(
    deployment: Settings, tmp_path: Path, query: str, message: str
) -> None:
    wh = DuckDBWarehouse(tmp_path / "wh.duckdb")
    wh.create_dataset("acme_sales")
    wh.write_table("acme_sales.orders", pa.table({"id": [1]}))
    wh.create_dataset("globex_sales")
    wh.write_table("globex_sales.orders", pa.table({"id": [2]}))
    step = StepSpec(
        step_id="s",
        ps_type="bigquery.query",
        source={"query": query},
        destination={"dataset": "copy", "table": "t"},
    )
    with pytest.raises(QueryScopeError, match=message):
        SPEC.processor.run(step, _ctx(wh))
    assert wh.query("SELECT COUNT(*) AS n FROM acme_sales.orders").column("n")[0].as_py() == 1
    assert not wh.table_exists("acme_copy.t")
    wh.close()


def test_a_run_value_for_a_placeholder_must_be_an_identifier(deployment: Settings, tmp_path: Path) -> None:
    wh = DuckDBWarehouse(tmp_path / "wh.duckdb")
    step = StepSpec(
        step_id="s",
        ps_type="bigquery.query",
        source={"query": "SELECT * FROM {tenant_id}_sales.orders_{suffix}"},
        destination={"dataset": "copy", "table": "t"},
    )
    with pytest.raises(TemplateError, match="cannot be part of a table name"):
        SPEC.processor.run(step, _ctx(wh, suffix="x WHERE 1=1 UNION ALL SELECT * FROM globex_sales.orders"))
    wh.close()


# -- templating rules --------------------------------------------------------------------------------------------


def test_placeholders_are_pasted_only_into_identifiers() -> None:
    values = {"tenant_id": "acme", "region": "emea", "project": "p"}
    sql = "SELECT * FROM {tenant_id}_sales.orders_{region} WHERE note = '{{not_a_placeholder}}'"
    assert (
        render_checked_sql(sql, values, tenant_id="acme", project="p")
        == "SELECT * FROM acme_sales.orders_emea WHERE note = '{not_a_placeholder}'"
    )
    for bad in ("SELECT '{region}' AS r", "SELECT 1 AS x -- {region}\n", "SELECT {region}(1) AS x"):
        with pytest.raises(QueryScopeError, match=r"placeholder \{region\} may only be part of a table or column"):
            render_checked_sql(bad, values, tenant_id="acme", project="p")


def test_placeholder_values_are_checked_before_substitution() -> None:
    with pytest.raises(TemplateError, match=r"unknown placeholder \{tenant\}"):
        render("SELECT * FROM {tenant}_x.t", {"tenant_id": "acme"})
    for value in ("a b", "a;b", "a`b", "a'b", "a.b", "", True, 1.5):
        with pytest.raises(TerminalError):
            render("SELECT * FROM acme_x.t_{v}", {"v": value})
    assert render("t_{d}_{n}", {"d": date(2026, 11, 2), "n": 7}).text == "t_20261102_7"
