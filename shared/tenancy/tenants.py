"""Tenants in the state store (`tenants/{tenant_id}`): profile, plan, per-tenant limit overrides, status.

Onboarding is idempotent: the tenant document is created with create() (a repeat finds it), the tenant's datasets
(`{tenant}_metadata` and its pipelines' destinations) and history tables are provisioned on every call
(shared/lifecycle/provisioning.py; a crash between the two is repaired by the next call), and the
tenant's first API key is issued exactly once (claimed with a compare-and-set on `first_key_id`). Nothing here deletes:
suspension is the strongest change, and it is reversible.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from shared.clock import iso, utc_now
from shared.errors import BadRequest, Conflict, Forbidden, NotFound
from shared.pipelines.bounds import declared_plan
from shared.plans import check_limit_overrides, effective_plan, get_plan
from shared.ports.state import Filter, set_fields_if
from shared.runtime.caches import DocumentCache
from shared.runtime.context import Context
from shared.tenancy.audit import record_audit
from shared.tenancy.cache import TtlCache

TENANT_ID = re.compile(r"^[a-z][a-z0-9_]{2,49}$")
"""Also a valid BigQuery dataset prefix: `{tenant_id}_metadata` stays within BigQuery's 1024-character limit."""
TENANT_CACHE_TTL_S = 30.0
Status = Literal["active", "suspended"]
STATUSES = ("active", "suspended")


def tenant_path(tenant_id: str) -> str:
    return f"tenants/{tenant_id}"


def check_tenant_id(tenant_id: str) -> str:
    if not isinstance(tenant_id, str) or not TENANT_ID.match(tenant_id):
        raise BadRequest(
            f"invalid tenant id {tenant_id!r}: 3-50 characters, lower-case letters, digits and '_', "
            "starting with a letter",
            {"field": "tenant_id"},
        )
    return tenant_id


def get_tenant(ctx: Context, tenant_id: str) -> dict[str, Any]:
    doc = ctx.state.get(tenant_path(tenant_id)) if TENANT_ID.match(tenant_id) else None
    if doc is None:
        raise NotFound(f"unknown tenant {tenant_id!r}", {"field": "tenant_id"})
    return doc


def _tenant_cache(ctx: Context) -> DocumentCache:
    caches = ctx.caches
    with caches.lock:
        if caches.tenants is None:
            caches.tenants = TtlCache[dict[str, Any]](TENANT_CACHE_TTL_S, 100_000)
        return caches.tenants


def get_tenant_cached(ctx: Context, tenant_id: str) -> dict[str, Any]:
    """For per-request checks (status, rate limit); admission reads the document fresh."""
    cache = _tenant_cache(ctx)
    doc = cache.get(tenant_id)
    if doc is None:
        doc = get_tenant(ctx, tenant_id)
        cache.put(tenant_id, doc)
    return doc


def query_bytes_cap(ctx: Context, tenant_id: str) -> int:
    """Bytes one BigQuery query of the tenant may bill: its effective plan's cap (override included); a tenant with
    no document yet gets the plan its tenant.yaml names."""
    try:
        tenant = get_tenant_cached(ctx, tenant_id)
    except NotFound:
        return declared_plan(ctx.settings.config_dir, tenant_id).bytes_billed_per_query
    return effective_plan(tenant).bytes_billed_per_query


def require_active(tenant: dict[str, Any]) -> None:
    if tenant.get("status") != "active":
        raise Forbidden(
            f"tenant {tenant['tenant_id']!r} is {tenant.get('status')}; contact the operator",
            {"field": "tenant_id", "status": tenant.get("status")},
        )


def list_tenants(ctx: Context, status: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    filters = [Filter("status", "==", status)] if status else []
    return [d for _, d in ctx.state.list("tenants", filters, order_by="tenant_id", limit=limit)]


def update_tenant(
    ctx: Context,
    tenant_id: str,
    changes: dict[str, Any],
    actor: str = "admin",
    user_id: str | None = None,
) -> dict[str, Any]:
    """Change plan, status, limits and/or profile with a compare-and-set; every change is audited."""
    if get_tenant(ctx, tenant_id).get("status") == "offboarded":  # its keys are revoked, maybe its data gone: final
        raise Conflict(f"tenant {tenant_id!r} is offboarded; onboard a new tenant instead", {"field": "tenant_id"})
    update: dict[str, Any] = {}
    if "plan" in changes and changes["plan"] is not None:
        update["plan"] = get_plan(str(changes["plan"])).name
    if "status" in changes and changes["status"] is not None:
        if changes["status"] not in STATUSES:
            raise BadRequest(f"status must be one of {', '.join(STATUSES)}", {"field": "status"})
        update["status"] = changes["status"]
    if "limits" in changes and changes["limits"] is not None:
        update["limits"] = check_limit_overrides(dict(changes["limits"]))
    if "profile" in changes and changes["profile"] is not None:
        update["profile"] = dict(changes["profile"])
    if not update:
        raise BadRequest("nothing to change: give plan, status, limits or profile", {"field": "<body>"})
    update["updated_at"] = iso(utc_now())
    if not set_fields_if(ctx.state, tenant_path(tenant_id), update, lambda d: True):
        raise NotFound(f"unknown tenant {tenant_id!r}", {"field": "tenant_id"})
    _tenant_cache(ctx).drop(tenant_id)
    record_audit(
        ctx, "tenant.updated", tenant_id, actor, user_id, {k: v for k, v in update.items() if k != "updated_at"}
    )
    return get_tenant(ctx, tenant_id)
