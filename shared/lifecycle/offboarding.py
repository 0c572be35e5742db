"""Offboarding a tenant: stop everything it can do at once, and delete its data only when told so explicitly.

Always (idempotent, audited once): the tenant is marked `offboarded`, so admission refuses every run, scheduled ones
included (a Scheduler tick of an offboarded tenant is refused, acked and never retried), and every API key is
revoked. Its data (the datasets of its warehouse, its secrets) is deleted only when the caller confirms by repeating
the tenant id (`confirm` = tenant id); without it the answer lists what would be deleted and nothing is. Cloud
Scheduler jobs and the tenant's Terraform resources follow tenant_configs/: remove its folder and apply to drop them.
"""

from __future__ import annotations

from typing import Any

from shared import logs
from shared.clock import iso, utc_now
from shared.errors import BadRequest
from shared.ports.state import set_fields_if
from shared.ports.warehouse import TenantDatasets
from shared.runtime.context import Context
from shared.secrets.store import delete_secret, list_secret_names
from shared.tenancy import apikeys
from shared.tenancy.audit import record_audit
from shared.tenancy.tenants import _tenant_cache, get_tenant, tenant_path

log = logs.get_logger(__name__)
OFFBOARDED = "offboarded"


def _scheduled_pipelines(ctx: Context, tenant_id: str) -> list[str]:
    from shared.scheduling.local import scheduled_pipelines

    found, _ = scheduled_pipelines(ctx.settings.config_dir, tenant_id)
    return sorted(p.pipeline_id for p in found)


def _tenant_datasets(ctx: Context, tenant_id: str) -> TenantDatasets:
    warehouse = ctx.warehouse_for(tenant_id)
    if not isinstance(warehouse, TenantDatasets):
        raise BadRequest(
            f"the {ctx.settings.warehouse} warehouse cannot list a tenant's datasets", {"field": "confirm"}
        )
    return warehouse


def offboard_tenant(
    ctx: Context, tenant_id: str, confirm: str | None, actor: str, user_id: str | None = None
) -> dict[str, Any]:
    """Offboard `tenant_id`; with `confirm == tenant_id` also delete its datasets and secrets. Safe to repeat."""
    tenant = get_tenant(ctx, tenant_id)
    if confirm is not None and confirm != tenant_id:
        raise BadRequest(
            f"confirm must repeat the tenant id {tenant_id!r} to delete its data; nothing was changed",
            {"field": "confirm"},
        )
    newly = tenant.get("status") != OFFBOARDED
    if newly:
        now = iso(utc_now())
        set_fields_if(
            ctx.state,
            tenant_path(tenant_id),
            {"status": OFFBOARDED, "offboarded_at": now, "offboarded_by": user_id or actor, "updated_at": now},
            lambda d: d.get("status") != OFFBOARDED,
        )
        _tenant_cache(ctx).drop(tenant_id)
    revoked = [
        key["key_id"]
        for key in apikeys.list_keys(ctx, tenant_id)
        if not key.get("revoked_at") and apikeys.revoke_key(ctx, tenant_id, key["key_id"], "tenant offboarded")
    ]
    datasets = _tenant_datasets(ctx, tenant_id)
    data = {"datasets": datasets.list_datasets(), "secrets": list_secret_names(ctx, tenant_id)}
    result: dict[str, Any] = {
        "tenant_id": tenant_id,
        "status": OFFBOARDED,
        "api_keys_revoked": revoked,
        "schedules_stopped": _scheduled_pipelines(ctx, tenant_id),
        "data_deleted": confirm == tenant_id,
    }
    if newly or revoked:
        details = {k: result[k] for k in ("api_keys_revoked", "schedules_stopped")}
        record_audit(ctx, "tenant.offboarded", tenant_id, actor, user_id, details)
    if confirm != tenant_id:
        result["would_delete"] = data
        result["note"] = f"nothing deleted: confirm with the tenant id ({tenant_id!r}) to delete this data"
        return result
    deleted = {
        "datasets": [name for name in data["datasets"] if datasets.drop_dataset(name)],
        "secrets": data["secrets"],
    }
    for name in data["secrets"]:
        delete_secret(ctx, tenant_id, name)
    result["deleted"] = deleted
    if deleted["datasets"] or deleted["secrets"]:
        record_audit(ctx, "tenant.data_deleted", tenant_id, actor, user_id, deleted)
        log.warning("tenant %s offboarded: deleted %s", tenant_id, deleted)
    return result
