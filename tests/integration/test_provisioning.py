"""Datasets are provisioned at onboarding (and by `cloudact tenants provision`), never created by runs on BigQuery; the
embedded warehouse creates a dataset a run names through a parameter, once, without racing parallel steps."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.cli.main import cli
from shared.lifecycle.onboarding import onboard_tenant
from shared.lifecycle.provisioning import provision_tenant, tenant_datasets
from shared.runtime.context import Context
from shared.runtime.settings import Settings

PARAMETER_DATASET = """
pipeline_id: by_parameter
parameters:
  ds: {type: string, default: scratch}
steps:
  - step_id: fixed
    ps_type: bigquery.query
    source: {query: "SELECT 1 AS x"}
    destination: {dataset: mart, table: fixed}
  - step_id: chosen
    ps_type: bigquery.query
    source: {query: "SELECT 1 AS x"}
    destination: {dataset: "{ds}", table: chosen}
  - step_id: noop
    ps_type: debug.noop
"""


@pytest.fixture
def ctx(settings: Settings) -> Iterator[Context]:
    context = Context(settings)
    yield context
    context.close()


def test_a_tenant_needs_its_metadata_and_every_fixed_destination_dataset(config_dir: Path) -> None:
    (config_dir / "acme" / "pipelines" / "by_parameter.yaml").write_text(PARAMETER_DATASET)
    (config_dir / "acme" / "pipelines" / "broken.yaml").write_text("steps: [unclosed\n")
    # `{ds}` is filled in per run: nothing can provision it ahead (as Terraform's tenant_config module decides)
    assert tenant_datasets(config_dir, "acme") == ["acme_mart", "acme_metadata", "acme_sales"]
    assert tenant_datasets(config_dir, "nobody") == ["nobody_metadata"]


def test_onboarding_provisions_the_datasets_and_history_tables_once(ctx: Context) -> None:
    onboard_tenant(ctx, "acme", "starter")
    warehouse = ctx.warehouse_for("acme")
    assert isinstance(warehouse, DuckDBWarehouse)
    assert warehouse.list_datasets() == ["acme_metadata", "acme_sales"]
    tables = {t.table for t in warehouse.list_tables("acme_metadata")}
    assert tables == {
        "pipeline_executions",
        "step_executions",
        "dq_results",
        "pipeline_executions_latest",
        "step_executions_latest",
        "dq_results_latest",
    }
    again = provision_tenant(ctx, "acme")
    assert again.created == [] and again.existing == ["acme_metadata", "acme_sales"]


def test_cloudact_tenants_provision_creates_what_is_missing(
    ctx: Context, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    onboard_tenant(ctx, "acme", "starter")
    (settings.config_dir / "acme" / "pipelines" / "more.yaml").write_text(PARAMETER_DATASET)
    ctx.close()
    monkeypatch.setenv("CLOUDACT_HOME", str(settings.home))
    monkeypatch.setenv("CLOUDACT_CONFIG_DIR", str(settings.config_dir))
    result = CliRunner().invoke(cli, ["tenants", "provision", "acme"])
    assert result.exit_code == 0, result.output
    assert '"created": [\n    "acme_mart"\n  ]' in result.output
    unknown = CliRunner().invoke(cli, ["tenants", "provision", "nobody"])
    assert unknown.exit_code != 0 and "unknown tenant 'nobody'" in unknown.output


def _eight_stages(warehouse: DuckDBWarehouse) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def stage(i: int) -> None:
        try:
            session = warehouse.session()
            start.wait()
            session.require_dataset("acme_scratch")
            session.write_table(f"acme_scratch.t{i}", pa.table({"x": [i]}))
        except BaseException as exc:  # collected: an error in a thread would otherwise be lost
            errors.append(exc)

    threads = [threading.Thread(target=stage, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_parallel_steps_create_a_missing_dataset_once_without_a_catalog_conflict(tmp_path: Path) -> None:
    """Issue 16 item 5: eight stages of a new tenant's first run needing the same dataset all succeed first time
    (DuckDB answered "Catalog write-write conflict" to the losers of concurrent CREATE SCHEMA, which were retried)."""
    for trial in range(5):
        warehouse = DuckDBWarehouse(tmp_path / f"trial{trial}.duckdb")
        assert _eight_stages(warehouse) == []
        assert len(warehouse.list_tables("acme_scratch")) == 8
        warehouse.close()
