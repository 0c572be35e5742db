"""The one place where the harness meets tenancy: make a tenant exist and say how to call the API as that tenant.

Benchmarks and drills must measure the engine, not hit a plan's quota (a bench run admits hundreds of runs), so by
default the tenant is onboarded on the largest plan with every limit raised. Before tenancy existed any tenant with a
config folder was admitted; `onboard` then returns headers without a key and `has_tenancy()` is False.
"""

from __future__ import annotations

import importlib.util
from typing import Any


def has_tenancy() -> bool:
    modules = ("shared.plans", "shared.tenancy.tenants", "shared.tenancy.apikeys")
    return all(importlib.util.find_spec(m) is not None for m in modules)


def onboard(ctx: Any, tenant_id: str, limits: dict[str, int] | None = None, plan: str = "enterprise") -> dict[str, str]:
    """Onboard `tenant_id` in ctx's state (idempotent); returns the headers an API call as that tenant needs."""
    headers = {"X-User-ID": "bench"}
    if not has_tenancy():
        return headers
    from shared.lifecycle.onboarding import onboard_tenant
    from shared.tenancy.apikeys import issue_key
    from shared.tenancy.tenants import tenant_path, update_tenant

    if ctx.state.get(tenant_path(tenant_id)) is None:
        onboarded = onboard_tenant(ctx, tenant_id, plan, limits=limits or {}, actor="bench")
        if onboarded.first_key is not None:
            headers["X-API-Key"] = onboarded.first_key.api_key
            return headers
    else:  # e.g. the embedded runtime onboarded it from tenant_configs/ with its tenant.yaml plan
        update_tenant(ctx, tenant_id, {"plan": plan, "limits": limits or {}}, actor="bench")
    headers["X-API-Key"] = issue_key(ctx, tenant_id, "bench", ["admin"], created_by="bench").api_key
    return headers


def onboard_unthrottled(ctx: Any, tenant_id: str) -> dict[str, str]:
    """`onboard` with every plan limit raised to the maximum."""
    if not has_tenancy():
        return onboard(ctx, tenant_id)
    from shared.plans import LIMIT_FIELDS, MAX_LIMIT

    return onboard(ctx, tenant_id, dict.fromkeys(LIMIT_FIELDS, MAX_LIMIT))
