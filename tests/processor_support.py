"""Shared fixtures of the processor tests: a warehouse per engine (DuckDB, and BigQuery's API on bqemulator) and a
step environment with its own tenant, landing folder and runtime Context.

Import the fixtures into a test module with
`from tests.processor_support import engine_fixture, env_fixture, warehouse_fixture  # noqa: F401`; tests then ask
for `engine`, `warehouse` and `env`.
BigQuery cases skip with a clear reason when `CLOUDACT_BIGQUERY_ENDPOINT` is unset or does not answer, and fail
under CI=true. Every test gets a fresh tenant id, so its datasets never collide with another test (or helper).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import shutil
import socket
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from shared.pipelines.spec import StepSpec
from shared.ports.warehouse import Warehouse
from shared.processors.base import StepContext, StepResult
from shared.processors.registry import get_processor
from shared.runtime.context import Context, set_context
from shared.runtime.settings import Settings
from tests.servers import server_missing

BQ_PROJECT = "cloudact-test"
BQEMU_MISSING = "bqemulator not running: `make test` starts it (scripts/bqemulator.sh); BigQuery cases skipped"


@functools.cache
def _answers(endpoint: str) -> bool:
    url = urllib.parse.urlsplit(endpoint)
    try:
        socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=2).close()
    except OSError:
        return False
    return True


def require_bigquery() -> str:
    """bqemulator's endpoint; skips the test with the reason when it is not there (fails it under CI=true)."""
    endpoint = os.environ.get("CLOUDACT_BIGQUERY_ENDPOINT")
    if not endpoint or not _answers(endpoint):
        answer = f" (CLOUDACT_BIGQUERY_ENDPOINT={endpoint} does not answer)" if endpoint else ""
        server_missing(BQEMU_MISSING + answer)
    return endpoint


@pytest.fixture(name="engine", params=["duckdb", pytest.param("bigquery", marks=pytest.mark.bqemulator)])
def engine_fixture(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "bigquery":
        require_bigquery()
    return name


def open_warehouse(engine: str, path: Path, request_timeout_s: float = 20, job_timeout_s: float = 120) -> Warehouse:
    """The warehouse adapter under test: DuckDB in `path`, or BigQuery's API on bqemulator with short deadlines."""
    if engine == "duckdb":
        from shared.adapters.duckdb_warehouse import DuckDBWarehouse

        return DuckDBWarehouse(path)
    from shared.adapters.bigquery_warehouse import BigQueryWarehouse

    return BigQueryWarehouse(
        BQ_PROJECT,
        endpoint=os.environ["CLOUDACT_BIGQUERY_ENDPOINT"],
        retry_deadline_s=5,
        request_timeout_s=request_timeout_s,
        job_timeout_s=job_timeout_s,
    )


@pytest.fixture(name="warehouse")
def warehouse_fixture(engine: str, tmp_path: Path) -> Iterator[Warehouse]:
    wh = open_warehouse(engine, tmp_path / "warehouse.duckdb")
    yield wh
    wh.close()


@dataclass
class StepEnv:
    """One tenant's world for a processor test: its warehouse, landing folder, config folder and Context."""

    warehouse: Warehouse
    engine: str
    tenant_id: str
    landing: Path
    context: Context
    run_ids: list[str] = field(default_factory=list)

    def step_context(
        self,
        parameters: dict[str, Any] | None = None,
        run_id: str | None = None,
        timeout_s: float = 300.0,
        run_date: dt.date = dt.date(2026, 11, 2),
    ) -> StepContext:
        run = run_id or f"run_{uuid.uuid4().hex[:12]}"
        return StepContext(
            tenant_id=self.tenant_id,
            pipeline_id="test_pipeline",
            run_id=run,
            stage_id="step",
            attempt=1,
            run_date=run_date,
            parameters=parameters or {},
            variables={},
            warehouse=self.warehouse,
            deadline_monotonic=time.monotonic() + timeout_s,
            runtime=self.context,
        )

    def run(self, raw_step: dict[str, Any], **kwargs: Any) -> StepResult:
        step = StepSpec.model_validate(raw_step)
        self.provision(step)
        return get_processor(step.ps_type).run(step, self.step_context(**kwargs))

    def provision(self, step: StepSpec) -> None:
        """What onboarding provisions for this step (shared/lifecycle/provisioning.py): the tenant's metadata dataset
        and the step's destination dataset when its name is fixed. Runs create none (on BigQuery they may not)."""
        from shared.lifecycle.provisioning import STATIC_DATASET

        self.warehouse.create_dataset(f"{self.tenant_id}_metadata")
        dataset = (step.destination or {}).get("dataset")
        if isinstance(dataset, str) and STATIC_DATASET.match(dataset):
            self.warehouse.create_dataset(f"{self.tenant_id}_{dataset}")

    def table(self, dataset: str, table: str, order_by: str | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT * FROM {self.tenant_id}_{dataset}.{table}" + (f" ORDER BY {order_by}" if order_by else "")
        return self.warehouse.query(sql).to_pylist()

    def load(self, dataset: str, table: str, data: pa.Table) -> None:
        self.warehouse.create_dataset(f"{self.tenant_id}_{dataset}")
        self.warehouse.write_table(f"{self.tenant_id}_{dataset}.{table}", data, "truncate")


@pytest.fixture(name="env")
def env_fixture(warehouse: Warehouse, engine: str, tmp_path: Path) -> Iterator[StepEnv]:
    tenant_id = f"t{uuid.uuid4().hex[:10]}"
    config_dir = tmp_path / "tenant_configs"
    (config_dir / tenant_id).mkdir(parents=True)
    (config_dir / "othertenant").mkdir()
    settings = Settings(runtime="embedded", home=tmp_path / ".cloudact", config_dir=config_dir, project=BQ_PROJECT)
    context = Context(settings, _warehouses={tenant_id: warehouse})
    previous = set_context(context)
    landing = settings.home / "files" / tenant_id
    landing.mkdir(parents=True)
    yield StepEnv(warehouse, engine, tenant_id, landing, context)
    set_context(previous)
    if context._state is not None:
        context._state.close()
    if engine == "bigquery":
        _drop_bigquery_datasets(tenant_id)
    shutil.rmtree(landing, ignore_errors=True)


def _drop_bigquery_datasets(tenant_id: str) -> None:
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    client = bigquery.Client(
        project=BQ_PROJECT,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options=ClientOptions(api_endpoint=os.environ["CLOUDACT_BIGQUERY_ENDPOINT"]),
    )
    retry = bigquery.DEFAULT_RETRY.with_deadline(5)
    for ds in client.list_datasets(retry=retry, timeout=10):
        if ds.dataset_id.startswith(tenant_id + "_"):
            client.delete_dataset(ds.dataset_id, delete_contents=True, not_found_ok=True, retry=retry, timeout=10)
    client.close()  # type: ignore[no-untyped-call]
