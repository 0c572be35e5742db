"""Provisioning a tenant's datasets: `{tenant}_metadata` and every dataset its pipelines write to by a fixed name.

Why here and not on the hot path: BigQuery checks `bigquery.datasets.create` on the project before it looks whether a
dataset exists, so `create_dataset(exists_ok=True)` run as a tenant's own account (which holds roles on its datasets
only) answers 403 (https://cloud.google.com/bigquery/docs/datasets#required_permissions). Runs therefore only check
their datasets (`Warehouse.require_dataset`), and datasets are made here, by onboarding (API, CLI, the embedded
runtime's bootstrap) and `cloudact tenants provision TENANT`, with the identity of the process doing it (the
operator's or the onboarding function's credentials, never the tenant's), which on GCP needs
`bigquery.datasets.create` (roles/bigquery.user on the project) and `bigquery.datasets.update` to give the tenant's
account WRITER on what it creates.

The datasets are the ones Terraform's tenant module derives (terraform/modules/tenant_config: `{tenant}_metadata`
plus `{tenant}_{d}` for each step's `destination.dataset` matching `^[a-z][a-z0-9_]*$`), read from the same YAML the
same way, so a dataset whose name a run parameter fills in (`{ds}`) is not provisioned: on BigQuery it must be
provisioned by name; the embedded warehouse creates it when a run first needs it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shared import logs
from shared.catalog.loader import list_pipeline_files
from shared.metadata_tables import create_metadata_tables, metadata_dataset
from shared.ports.warehouse import DatasetCreationRefused, Warehouse
from shared.runtime.context import Context
from shared.runtime.settings import Settings
from shared.yaml_source import load_checked, read_config_text

log = logs.get_logger(__name__)
STATIC_DATASET = re.compile(r"^[a-z][a-z0-9_]*$")
"""A `destination.dataset` Terraform provisions (terraform/modules/tenant_config/main.tf uses the same pattern)."""


@dataclass(frozen=True)
class Provisioned:
    tenant_id: str
    created: list[str]
    """Datasets this call created."""
    existing: list[str]
    """Datasets that were there already."""
    refused: str | None = None
    """Why nothing (more) was provisioned: this identity may not create datasets (onboarding only; see below)."""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tenant_id": self.tenant_id, "created": self.created, "existing": self.existing}
        return out | ({"refused": self.refused} if self.refused else {})


def tenant_datasets(config_dir: Path, tenant_id: str) -> list[str]:
    """Every dataset the tenant needs: `{tenant}_metadata` and `{tenant}_{d}` for each fixed destination dataset of
    its pipelines (an unreadable pipeline file is skipped with a warning: validation reports it)."""
    names = {metadata_dataset(tenant_id)}
    for path in list_pipeline_files(config_dir, tenant_id):
        try:
            data = load_checked(read_config_text(path)).data
        except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
            log.warning("%s/%s: %s; its datasets are not provisioned", tenant_id, path.name, exc)
            continue
        steps = data.get("steps") if isinstance(data, dict) else None
        for step in steps if isinstance(steps, list) else []:
            destination = step.get("destination") if isinstance(step, dict) else None
            dataset = destination.get("dataset") if isinstance(destination, dict) else None
            if isinstance(dataset, str) and STATIC_DATASET.match(dataset):
                names.add(f"{tenant_id}_{dataset}")
    return sorted(names)


def _admin_bigquery(settings: Settings, tenant_id: str) -> Warehouse:
    """BigQuery as this process's own identity (not the tenant's impersonated account, which may not create datasets);
    on GCP it grants the tenant's account WRITER on each dataset it creates (Terraform's tenant module grants the same
    on the datasets it manages)."""
    from shared.adapters.bigquery_warehouse import BigQueryWarehouse
    from shared.adapters.gcp_identity import tenant_service_account_email

    writer = tenant_service_account_email(settings.project, tenant_id) if settings.runtime == "gcp" else None
    return BigQueryWarehouse(
        settings.project,
        settings.bigquery_endpoint,
        settings.bigquery_location,
        tenant_id=tenant_id,
        dataset_writer=writer,
    )


def provision_tenant(ctx: Context, tenant_id: str, strict: bool = True) -> Provisioned:
    """Create the tenant's missing datasets and its history tables; idempotent (a repeat creates nothing). Embedded,
    the tenant's own DuckDB file is used (its local user owns it).

    `strict=False` (onboarding): an identity BigQuery refuses dataset creation to (an API function deployed without
    bigquery.datasets.create, where Terraform's tenant module owns the datasets) logs a warning and provisions nothing,
    instead of failing the onboarding; a run then names any dataset still missing. `cloudact tenants provision` is
    strict: the refusal is its answer."""
    if ctx.settings.warehouse != "bigquery":
        return _provision(ctx.warehouse_for(tenant_id), ctx.settings.config_dir, tenant_id, strict)
    warehouse = _admin_bigquery(ctx.settings, tenant_id)
    try:
        return _provision(warehouse, ctx.settings.config_dir, tenant_id, strict)
    finally:
        warehouse.close()


def _provision(warehouse: Warehouse, config_dir: Path, tenant_id: str, strict: bool) -> Provisioned:
    created: list[str] = []
    existing: list[str] = []
    try:
        for dataset in tenant_datasets(config_dir, tenant_id):
            (created if warehouse.create_dataset(dataset) else existing).append(dataset)
        create_metadata_tables(warehouse, tenant_id)
    except DatasetCreationRefused as exc:
        if strict:
            raise
        log.warning("tenant %s: datasets not provisioned by onboarding: %s", tenant_id, exc)
        return Provisioned(tenant_id, created, existing, refused=str(exc))
    if created:
        log.info("tenant %s: provisioned datasets %s", tenant_id, ", ".join(created))
    return Provisioned(tenant_id, created, existing)
