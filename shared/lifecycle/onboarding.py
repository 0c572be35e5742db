"""Onboarding: create a tenant (or find it), provision its datasets where onboarding is the provisioner, and issue its
first key exactly once. Above tenancy because it drives provisioning (warehouse datasets and history tables).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.clock import iso, utc_now
from shared.errors import Conflict
from shared.lifecycle.provisioning import provision_tenant
from shared.plans import check_limit_overrides, get_plan
from shared.ports.state import set_fields_if
from shared.runtime.context import Context
from shared.tenancy.apikeys import IssuedKey, issue_key, revoke_key
from shared.tenancy.audit import record_audit
from shared.tenancy.tenants import TENANT_ID, check_tenant_id, get_tenant, tenant_path


@dataclass(frozen=True)
class Onboarded:
    tenant: dict[str, Any]
    created: bool
    first_key: IssuedKey | None
    """The tenant's first (admin-scoped) API key: only ever returned once, by the call that issued it."""


def _id_prefixes(tenant_id: str) -> list[str]:
    """`acme_eu_west` -> [`acme`, `acme_eu`]: the shorter ids whose datasets would overlap this tenant's."""
    parts = tenant_id.split("_")
    return ["_".join(parts[:i]) for i in range(1, len(parts))]


def _prefix_marker_path(prefix: str) -> str:
    return f"tenant_id_prefixes/{prefix}"


def dataset_prefix_clash(ctx: Context, tenant_id: str) -> str | None:
    """Another tenant whose datasets could collide with this one's: `acme` + `eu_sales` is `acme_eu` + `sales`.

    Every `{tenant}_{dataset}` name must name one tenant, so no tenant id may be another's id extended by `_...`.
    Both directions are key lookups (no scan): shorter ids directly, longer ones through the prefix markers every
    onboarded tenant leaves (`tenant_id_prefixes/{prefix}`).
    """
    for shorter in _id_prefixes(tenant_id):
        if TENANT_ID.match(shorter) and ctx.state.get(tenant_path(shorter)) is not None:
            return shorter
    marker = ctx.state.get(_prefix_marker_path(tenant_id))
    return str(marker["tenant_id"]) if marker else None


def onboard_tenant(
    ctx: Context,
    tenant_id: str,
    plan: str,
    profile: dict[str, Any] | None = None,
    actor: str = "admin",
    user_id: str | None = None,
    limits: dict[str, Any] | None = None,
) -> Onboarded:
    """Create the tenant (or find it), provision its datasets, issue its first key once.

    A repeat with a different plan is a 409: changing a plan is a separate, audited call (`update_tenant`).
    """
    check_tenant_id(tenant_id)
    get_plan(plan)
    overrides = check_limit_overrides(limits or {})
    if ctx.state.get(tenant_path(tenant_id)) is None:
        clash = dataset_prefix_clash(ctx, tenant_id)
        if clash:
            raise Conflict(
                f"tenant id {tenant_id!r} would share dataset names with tenant {clash!r} "
                f"(`{tenant_id}_x` and `{clash}_x` overlap); pick an id that is not one extended by '_'",
                {"field": "tenant_id", "clashes_with": clash},
            )
    now = iso(utc_now())
    doc: dict[str, Any] = {
        "tenant_id": tenant_id,
        "profile": dict(profile or {}),
        "plan": plan,
        "limits": overrides,
        "status": "active",
        "created_at": now,
        "updated_at": now,
        "created_by": user_id or actor,
        "first_key_id": None,
    }
    created = ctx.state.create(tenant_path(tenant_id), doc)
    if created:
        for prefix in _id_prefixes(tenant_id):
            ctx.state.set(_prefix_marker_path(prefix), {"tenant_id": tenant_id})
    if not created:
        existing = ctx.state.get(tenant_path(tenant_id))
        if existing is None:
            raise Conflict(f"tenant {tenant_id!r} changed during onboarding; retry", {"field": "tenant_id"})
        if existing.get("plan") != plan:
            raise Conflict(
                f"tenant {tenant_id!r} already exists with plan {existing.get('plan')!r}; change plans with "
                f"PATCH /api/v1/admin/tenants/{tenant_id}",
                {"field": "plan"},
            )
        doc = existing
    if ctx.settings.warehouse != "bigquery":  # the local DuckDB file: onboarding is the only provisioner there
        provision_tenant(ctx, tenant_id, strict=False)
    # On BigQuery the datasets belong to Terraform's tenant module (or `cloudact tenants provision`, run by an
    # operator): the api function's identity holds no BigQuery role at all (checked by make gcp-parity).
    first_key = None
    if not doc.get("first_key_id"):
        first_key = issue_key(ctx, tenant_id, "initial admin key", ["admin"], created_by=user_id or actor)
        won = set_fields_if(
            ctx.state,
            tenant_path(tenant_id),
            {"first_key_id": first_key.key_id},
            lambda d: not d.get("first_key_id"),
        )
        if not won:  # a concurrent onboarding issued it: exactly one first key exists
            revoke_key(ctx, tenant_id, first_key.key_id, "lost a concurrent onboarding")
            first_key = None
        doc = get_tenant(ctx, tenant_id)
    if created:
        record_audit(ctx, "tenant.onboarded", tenant_id, actor, user_id, {"plan": plan, "limits": overrides})
    return Onboarded(doc, created, first_key)
