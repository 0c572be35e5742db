"""`pipelines validate`'s warehouse checks (sql_check) on both warehouses: DuckDB (EXPLAIN) and BigQuery's API
(a dry-run job, on bqemulator). The same pipeline file gets the same verdicts, at the same file:line:col."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.catalog.loader import load_pipeline
from shared.catalog.sql_check import check_pipeline
from shared.ports.warehouse import Warehouse
from tests.processor_support import BQ_PROJECT, engine_fixture, open_warehouse  # noqa: F401


@pytest.fixture
def tenant(engine: str, tmp_path: Path) -> Iterator[tuple[str, Warehouse]]:
    """A tenant id of its own (bqemulator is shared) with `{tenant}_sales.orders` in its warehouse."""
    tenant_id = f"sqlc{uuid.uuid4().hex[:10]}"
    wh = open_warehouse(engine, tmp_path / "warehouse.duckdb", request_timeout_s=10, job_timeout_s=60)
    wh.execute(f"CREATE SCHEMA IF NOT EXISTS {tenant_id}_sales")
    wh.execute(f"CREATE TABLE {tenant_id}_sales.orders AS SELECT 1 AS order_id, 'emea' AS region, 2.5 AS amount")
    yield tenant_id, wh
    wh.execute(f"DROP SCHEMA IF EXISTS {tenant_id}_sales CASCADE")
    wh.close()


PIPELINE = """pipeline_id: p
steps:
  - step_id: good
    ps_type: bigquery.query
    source: {query: "SELECT region, SUM(amount) AS total FROM {tenant_id}_sales.orders GROUP BY region"}
    destination: {dataset: sales, table: totals}
  - step_id: bad_column
    ps_type: bigquery.query
    source: {query: "SELECT region, amount_usd FROM {tenant_id}_sales.orders"}
    destination: {dataset: sales, table: t2}
  - step_id: later
    ps_type: bigquery.query
    depends_on: [good]
    source: {query: "SELECT region, total * 2 AS doubled FROM {tenant_id}_sales.totals"}
    destination: {dataset: sales, table: t3}
  - step_id: later_bad
    ps_type: bigquery.query
    depends_on: [good]
    source: {query: "SELECT region, amount FROM {tenant_id}_sales.totals"}
    destination: {dataset: sales, table: t4}
"""


def test_dry_run_verdicts_are_the_same_on_both_warehouses(tenant: tuple[str, Warehouse], tmp_path: Path) -> None:
    tenant_id, wh = tenant
    folder = tmp_path / "tenant_configs" / tenant_id / "pipelines"
    folder.mkdir(parents=True)
    path = folder / "p.yaml"
    path.write_text(PIPELINE)
    report = check_pipeline(path, load_pipeline(path), wh, BQ_PROJECT)
    assert report.dry_runs == 2 and report.known_later == 0  # `later` read the columns `good` returns
    first, second = report.errors
    assert (first.issue.line, first.issue.column) == (9, 37)  # `amount_usd` in the query
    assert first.issue.key == "steps[1].source.query" and "amount_usd" in first.issue.message
    assert (second.issue.line, second.issue.column) == (19, 37)  # `amount`: not a column `good` returns
    assert second.issue.key == "steps[3].source.query" and "amount" in second.issue.message
