"""Run history on both warehouses (DuckDB, and BigQuery's API on bqemulator): provisioned tables and views, written
append-only without load jobs, read as the latest row per run / attempt / check whatever was written twice."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import metadata_tables as metadata
from shared.ports.warehouse import Warehouse
from shared.runtime.context import Context
from shared.runtime.settings import Settings
from tests.processor_support import BQ_PROJECT, _drop_bigquery_datasets, engine_fixture, open_warehouse  # noqa: F401


@pytest.fixture
def tenant(engine: str, tmp_path: Path) -> Iterator[tuple[str, Warehouse, Context]]:
    tenant_id = f"t{uuid.uuid4().hex[:10]}"
    warehouse = open_warehouse(engine, tmp_path / "warehouse.duckdb")
    settings = Settings(home=tmp_path / ".cloudact", config_dir=tmp_path / "configs", project=BQ_PROJECT)
    ctx = Context(settings, _warehouses={tenant_id: warehouse})
    warehouse.create_dataset(metadata.metadata_dataset(tenant_id))  # what onboarding provisions
    metadata.create_metadata_tables(warehouse, tenant_id)
    yield tenant_id, warehouse, ctx
    if engine == "bigquery":
        _drop_bigquery_datasets(tenant_id)
    warehouse.close()


def _run(tenant_id: str, run_id: str, status: str, ended: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    run = {
        "run_id": run_id,
        "tenant_id": tenant_id,
        "pipeline_id": "daily",
        "status": status,
        "run_date": "2026-11-02",
        "started_at": "2026-11-02T03:00:00+00:00",
        "ended_at": ended,
        "trigger": {"type": "api"},
    }
    attempt = {"attempt": 1, "status": status, "started_at": "2026-11-02T03:00:00+00:00", "ended_at": ended}
    stages = [{"stage_id": "load", "ps_type": "debug.noop", "status": status, "attempts": [attempt]}]
    return run, stages


def test_a_finalisation_redone_or_revised_leaves_readers_one_row_per_run(
    tenant: tuple[str, Warehouse, Context],
) -> None:
    tenant_id, warehouse, ctx = tenant
    dataset = metadata.metadata_dataset(tenant_id)
    failed = _run(tenant_id, "run_a", "FAILED", "2026-11-02T03:05:00+00:00")
    metadata.record_run(ctx, *failed)
    metadata.record_run(ctx, *failed)  # the same finalisation, redelivered
    metadata.record_run(ctx, *_run(tenant_id, "run_b", "SUCCEEDED", "2026-11-02T03:01:00+00:00"))
    metadata.record_run(ctx, *_run(tenant_id, "run_a", "SUCCEEDED", "2026-11-02T04:00:00+00:00"))  # resumed later
    latest = warehouse.query(f"SELECT run_id, status FROM {dataset}.pipeline_executions_latest ORDER BY run_id")
    both = [{"run_id": "run_a", "status": "SUCCEEDED"}, {"run_id": "run_b", "status": "SUCCEEDED"}]
    assert latest.to_pylist() == both
    steps = warehouse.query(f"SELECT run_id, status FROM {dataset}.step_executions_latest ORDER BY run_id")
    assert steps.to_pylist() == both
    # the seed's own query keeps working on the table itself
    recent = warehouse.query(
        f"SELECT DISTINCT run_id FROM {dataset}.pipeline_executions WHERE execution_date >= DATE '2026-10-27'"
    )
    assert sorted(recent.column("run_id").to_pylist()) == ["run_a", "run_b"]


def test_a_run_of_a_tenant_whose_metadata_dataset_is_missing_fails_naming_it(engine: str, tmp_path: Path) -> None:
    warehouse = open_warehouse(engine, tmp_path / "strict.duckdb")
    if engine == "duckdb":
        from shared.adapters.duckdb_warehouse import DuckDBWarehouse

        warehouse.close()
        warehouse = DuckDBWarehouse(tmp_path / "strict.duckdb", create_missing_datasets=False)
    tenant_id = f"t{uuid.uuid4().hex[:10]}"
    ctx = Context(Settings(home=tmp_path / ".cloudact", project=BQ_PROJECT), _warehouses={tenant_id: warehouse})
    from shared.errors import TerminalError

    with pytest.raises(TerminalError, match=rf"{tenant_id}_metadata does not exist; provision it"):
        metadata.record_run(ctx, *_run(tenant_id, "run_x", "SUCCEEDED", "2026-11-02T03:01:00+00:00"))
    warehouse.close()
