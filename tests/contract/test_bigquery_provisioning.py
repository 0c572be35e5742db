"""Provisioning on BigQuery's API (bqemulator behind a recording server that can answer like IAM): the datasets a
tenant needs are created as the provisioning identity, and an identity BigQuery refuses dataset creation to gets a
clear error from `cloudact tenants provision` while onboarding carries on (Terraform may own the datasets)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.lifecycle.provisioning import provision_tenant
from shared.ports.warehouse import DatasetCreationRefused
from shared.runtime.context import Context
from shared.runtime.settings import Settings
from tests.bigquery_recorder import BigQueryRecorder, recorder_fixture  # noqa: F401
from tests.processor_support import BQ_PROJECT, _drop_bigquery_datasets

pytestmark = pytest.mark.bqemulator


@pytest.fixture
def tenant(tmp_path: Path) -> Iterator[str]:
    tenant_id = f"t{uuid.uuid4().hex[:10]}"
    pipelines = tmp_path / "configs" / tenant_id / "pipelines"
    pipelines.mkdir(parents=True)
    (pipelines / "p.yaml").write_text(
        "pipeline_id: p\nsteps:\n  - step_id: s\n    ps_type: bigquery.query\n"
        "    source: {query: 'SELECT 1 AS x'}\n    destination: {dataset: mart, table: t}\n"
    )
    yield tenant_id
    _drop_bigquery_datasets(tenant_id)


def _context(recorder: BigQueryRecorder, tmp_path: Path) -> Context:
    settings = Settings(
        runtime="emulators",
        warehouse="bigquery",
        project=BQ_PROJECT,
        bigquery_endpoint=recorder.url,
        home=tmp_path / ".cloudact",
        config_dir=tmp_path / "configs",
    )
    return Context(settings)


def test_provisioning_creates_the_tenants_datasets_and_history_once(
    recorder: BigQueryRecorder, tenant: str, tmp_path: Path
) -> None:
    ctx = _context(recorder, tmp_path)
    first = provision_tenant(ctx, tenant)
    assert first.created == [f"{tenant}_mart", f"{tenant}_metadata"] and first.existing == []
    again = provision_tenant(ctx, tenant)
    assert again.created == [] and again.existing == first.created
    warehouse = ctx.warehouse_for(tenant)
    assert warehouse.table_exists(f"{tenant}_metadata.pipeline_executions")
    warehouse.require_dataset(f"{tenant}_mart")
    ctx.close()


def test_an_identity_refused_dataset_creation_fails_provision_but_not_onboarding(
    recorder: BigQueryRecorder, tenant: str, tmp_path: Path
) -> None:
    recorder.refuse_dataset_creation = True
    ctx = _context(recorder, tmp_path)
    with pytest.raises(DatasetCreationRefused, match=rf"create dataset {tenant}_mart .*cloudact tenants provision"):
        provision_tenant(ctx, tenant)
    onboarding = provision_tenant(ctx, tenant, strict=False)
    assert onboarding.created == [] and onboarding.refused and "bigquery.datasets.create" in onboarding.refused
    ctx.close()
