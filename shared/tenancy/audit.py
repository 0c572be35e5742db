"""The audit trail of administrative changes: `audit/{id}` documents (who, what, which tenant, when).

Only changes are audited (onboarding, plan/status/limit changes, key creation/rotation/revocation, secret writes), not
reads. `user_id` is what the caller put in `X-User-ID`: recorded for audit only, never used to authorise anything.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from shared import logs
from shared.clock import iso, utc_now
from shared.ports.state import EXPIRE_AT, Filter, expires_in
from shared.runtime.context import Context

log = logs.get_logger(__name__)


def record_audit(
    ctx: Context,
    action: str,
    tenant_id: str | None,
    actor: str,
    user_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> str:
    audit_id = f"aud_{int(time.time() * 1000):011x}{secrets.token_hex(5)}"
    doc = {
        "audit_id": audit_id,
        "action": action,
        "tenant_id": tenant_id,
        "actor": actor,
        "user_id": user_id,
        "details": details or {},
        "at": iso(utc_now()),
        EXPIRE_AT: expires_in(ctx.settings.audit_retention_days),  # Firestore TTL (shared.ports.state)
    }
    ctx.state.create(f"audit/{audit_id}", doc)
    log.info("audit %s", action, extra={"fields": {"audit": doc}})
    return audit_id


def list_audit(ctx: Context, tenant_id: str, limit: int = 100) -> list[dict[str, Any]]:
    return [d for _, d in ctx.state.list("audit", [Filter("tenant_id", "==", tenant_id)], "at", True, limit)]
