"""The one place where the harness meets tenancy: make a tenant exist, unthrottled, and say how to call the API as it.

Benchmarks and drills must measure the engine, not hit a plan's quota (a bench run admits hundreds of runs), so the
tenant is onboarded on the largest plan with every limit raised. Before tenancy existed any tenant with a config
folder was admitted; this keeps working either way.
"""

from __future__ import annotations

from typing import Any


def onboard_unthrottled(ctx: Any, tenant_id: str) -> dict[str, str]:
    """Onboard `tenant_id` in ctx's state (idempotent); returns the headers an API call as that tenant needs."""
    try:
        from shared.tenancy.plans import LIMIT_FIELDS, MAX_LIMIT
        from shared.tenancy.tenants import onboard_tenant
    except ImportError:  # no tenancy in this tree: nothing to onboard, no key to send
        return {"X-User-ID": "bench"}
    onboarded = onboard_tenant(ctx, tenant_id, "enterprise", limits=dict.fromkeys(LIMIT_FIELDS, MAX_LIMIT))
    headers = {"X-User-ID": "bench"}
    if onboarded.first_key is not None:
        headers["X-API-Key"] = onboarded.first_key.api_key
    else:
        from shared.tenancy.apikeys import issue_key

        headers["X-API-Key"] = issue_key(ctx, tenant_id, "bench", ["admin"], created_by="bench").api_key
    return headers
