"""bigquery.query write modes on both warehouses: DuckDB (embedded) and BigQuery's API (bqemulator).

truncate replaces, append adds once per (run, step) whatever the redeliveries, merge upserts on merge_keys, and the
destination gets its partitioning and clustering when it is created. Every write is SQL inside the warehouse.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from shared.errors import TerminalError
from shared.pipelines.spec import StepSpec
from shared.ports.warehouse import Warehouse
from shared.processors.base import StepContext, StepResult
from shared.processors.bigquery_query import SPEC
from shared.runtime.context import Context, get_context, set_context
from shared.runtime.settings import Settings
from tests.processor_support import BQ_PROJECT, engine_fixture, open_warehouse  # noqa: F401

ORDERS = """
SELECT 1 AS id, 'emea' AS region, 10.0 AS amount, DATE '2026-11-01' AS day UNION ALL
SELECT 2, 'amer', 20.0, DATE '2026-11-01' UNION ALL
SELECT 3, 'apac', 30.0, DATE '2026-11-02'
"""
CHANGES = """
SELECT 2 AS id, 'amer' AS region, 25.0 AS amount, DATE '2026-11-02' AS day UNION ALL
SELECT 4, 'latam', 40.0, DATE '2026-11-02'
"""


@pytest.fixture
def tenant(engine: str, tmp_path: Path) -> Iterator[str]:
    """A fresh tenant id per test (datasets `{tenant}_*` cannot collide with other tests on the shared emulator)."""
    name = f"t{uuid.uuid4().hex[:10]}"
    (tmp_path / "configs" / name).mkdir(parents=True)
    previous = set_context(Context(Settings(project=BQ_PROJECT, home=tmp_path, config_dir=tmp_path / "configs")))
    yield name
    set_context(previous)


@pytest.fixture
def wh(engine: str, tenant: str, tmp_path: Path) -> Iterator[Warehouse]:
    warehouse = open_warehouse(engine, tmp_path / "warehouse.duckdb", request_timeout_s=10, job_timeout_s=60)
    warehouse.create_dataset(f"{tenant}_sales")  # provisioned at onboarding: `sales` is the steps' fixed destination
    yield warehouse
    if engine == "bigquery":
        client = warehouse._client  # type: ignore[attr-defined]
        for ds in client.list_datasets():
            if ds.dataset_id.startswith(f"{tenant}_"):
                client.delete_dataset(ds.reference, delete_contents=True, not_found_ok=True, timeout=10)
    warehouse.close()


def run_step(
    wh: Warehouse, tenant: str, query: str, run_id: str = "run_0001", attempt: int = 1, **dest: Any
) -> StepResult:
    step = StepSpec(
        step_id="load",
        ps_type="bigquery.query",
        source={"query": query},
        destination={"dataset": "sales", "table": "orders", **dest},
    )
    ctx = StepContext(
        tenant_id=tenant,
        pipeline_id="p",
        run_id=run_id,
        stage_id="load",
        attempt=attempt,
        run_date=date(2026, 11, 2),
        parameters={},
        variables={},
        warehouse=wh,
        deadline_monotonic=time.monotonic() + 120,
        runtime=get_context(),
    )
    return SPEC.processor.run(step, ctx)


def rows(wh: Warehouse, table: str) -> list[dict[str, Any]]:
    return wh.query(f"SELECT id, region, amount FROM {table} ORDER BY id").to_pylist()


@pytest.mark.parametrize(
    "layout", [{}, {"partition_field": "day", "cluster_by": ["region"]}], ids=["plain", "partitioned"]
)
def test_truncate_replaces_the_rows_and_follows_a_changed_query(
    wh: Warehouse, tenant: str, layout: dict[str, Any]
) -> None:
    table = f"{tenant}_sales.orders"
    first = run_step(wh, tenant, ORDERS, **layout)
    assert first.rows_out == 3 and first.details["table"] == table
    second = run_step(wh, tenant, CHANGES, run_id="run_0002", **layout)
    assert second.rows_out == 2
    assert rows(wh, table) == [
        {"id": 2, "region": "amer", "amount": 25.0},
        {"id": 4, "region": "latam", "amount": 40.0},
    ]
    changed = "SELECT 7 AS id, 'x' AS region, 1.0 AS amount, DATE '2026-11-03' AS day, 'new column' AS note"
    run_step(wh, tenant, changed, run_id="run_0003", **layout)
    assert wh.query(f"SELECT note FROM {table}").to_pylist() == [{"note": "new column"}]
    assert not wh.table_exists(f"{tenant}_sales._cloudact_stage_run_0003_load_1")


def test_append_adds_once_per_run_and_step_whatever_the_redeliveries(wh: Warehouse, tenant: str) -> None:
    table = f"{tenant}_sales.orders"
    for attempt in (1, 2, 3):  # the same stage delivered again (a lost ack, a retried attempt)
        result = run_step(wh, tenant, ORDERS, run_id="run_0001", attempt=attempt, write_mode="append")
        assert result.rows_out == 3
    assert [r["id"] for r in rows(wh, table)] == [1, 2, 3]
    run_step(wh, tenant, CHANGES, run_id="run_0002", write_mode="append")  # a new run appends
    assert [r["id"] for r in rows(wh, table)] == [1, 2, 2, 3, 4]
    for attempt in (1, 2, 3):
        assert not wh.table_exists(f"{tenant}_sales._cloudact_stage_run_0001_load_{attempt}")


def test_append_refuses_columns_the_table_does_not_have(wh: Warehouse, tenant: str) -> None:
    run_step(wh, tenant, ORDERS, write_mode="append")
    with pytest.raises(TerminalError, match=r"has no column\(s\) \['note'\]"):
        run_step(wh, tenant, "SELECT 9 AS id, 'x' AS note", run_id="run_0002", write_mode="append")


def test_merge_updates_matches_inserts_the_rest_and_repeats_harmlessly(wh: Warehouse, tenant: str) -> None:
    table = f"{tenant}_sales.orders"
    run_step(wh, tenant, ORDERS, write_mode="merge", merge_keys=["id"])
    for run_id in ("run_0002", "run_0003"):  # the second merge of the same rows changes nothing
        result = run_step(wh, tenant, CHANGES, run_id=run_id, write_mode="merge", merge_keys=["id"])
        assert result.rows_out == 2 and result.details["rows_merged"] == 2
        assert rows(wh, table) == [
            {"id": 1, "region": "emea", "amount": 10.0},
            {"id": 2, "region": "amer", "amount": 25.0},
            {"id": 3, "region": "apac", "amount": 30.0},
            {"id": 4, "region": "latam", "amount": 40.0},
        ]


def test_merge_on_a_composite_key(wh: Warehouse, tenant: str) -> None:
    table = f"{tenant}_sales.orders"
    run_step(wh, tenant, ORDERS, write_mode="merge", merge_keys=["region", "day"])
    run_step(
        wh,
        tenant,
        "SELECT 20 AS id, 'amer' AS region, 99.0 AS amount, DATE '2026-11-01' AS day",
        run_id="run_0002",
        write_mode="merge",
        merge_keys=["region", "day"],
    )
    assert [(r["id"], r["region"], r["amount"]) for r in rows(wh, table)] == [
        (1, "emea", 10.0),
        (3, "apac", 30.0),
        (20, "amer", 99.0),
    ]


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("SELECT 1 AS id, 'a' AS region UNION ALL SELECT 1, 'b'", r"0 row\(s\) with a NULL key and 1 key\(s\)"),
        ("SELECT CAST(NULL AS INT64) AS id, 'a' AS region", r"1 row\(s\) with a NULL key"),
    ],
)
def test_merge_refuses_keys_that_do_not_identify_one_row(wh: Warehouse, tenant: str, query: str, problem: str) -> None:
    with pytest.raises(TerminalError, match=problem):
        run_step(wh, tenant, query, write_mode="merge", merge_keys=["id"])


def test_partitioning_and_clustering_are_applied_when_the_table_is_created(
    wh: Warehouse, tenant: str, engine: str
) -> None:
    result = run_step(wh, tenant, ORDERS, partition_field="day", cluster_by=["region"])
    assert result.rows_out == 3
    if engine == "bigquery":
        table = wh._client.get_table(f"{BQ_PROJECT}.{tenant}_sales.orders")  # type: ignore[attr-defined]
        assert table.time_partitioning.field == "day" and table.time_partitioning.type_ == "DAY"
        assert table.clustering_fields == ["region"]
    run_step(wh, tenant, CHANGES, run_id="run_0002", write_mode="append", partition_field="day")
    assert len(rows(wh, f"{tenant}_sales.orders")) == 5


def test_a_partition_field_must_be_a_date_or_timestamp(wh: Warehouse, tenant: str) -> None:
    with pytest.raises(TerminalError, match="partition_field 'region' is string"):
        run_step(wh, tenant, ORDERS, partition_field="region")
