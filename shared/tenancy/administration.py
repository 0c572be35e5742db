"""Audited tenant administration, one function per change, used alike by the HTTP API (shared/api/admin_routes.py)
and the operator CLI (`cloudact keys | secrets | tenants update`): API keys (issue, rotate, revoke), secrets (set,
delete) and limit overrides.

`actor` is who acts (`admin`, `key:<id>`, `cli:<user>`), `user_id` the person behind it when known (X-User-ID);
both go to the audit record, and the person, else the actor, is written as the key's creator or revoker.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from shared.clock import utc_now
from shared.errors import BadRequest, NotFound
from shared.runtime.context import Context
from shared.secrets.store import SECRET_NAME, delete_secret, put_secret, secret_path
from shared.tenancy import apikeys
from shared.tenancy.audit import record_audit
from shared.tenancy.tenants import get_tenant


def create_api_key(
    ctx: Context,
    tenant_id: str,
    name: str,
    scopes: Sequence[str] = apikeys.DEFAULT_SCOPES,
    expires_in_days: int | None = None,
    actor: str = "admin",
    user_id: str | None = None,
) -> apikeys.IssuedKey:
    """A new key of an existing tenant (404 otherwise); its secret is in the result only."""
    get_tenant(ctx, tenant_id)
    expires = utc_now() + timedelta(days=expires_in_days) if expires_in_days else None
    key = apikeys.issue_key(ctx, tenant_id, name, list(scopes), expires, user_id or actor)
    record_audit(ctx, "api_key.created", tenant_id, actor, user_id, {"key_id": key.key_id})
    return key


def rotate_api_key(
    ctx: Context, tenant_id: str, key_id: str, grace_seconds: int, actor: str = "admin", user_id: str | None = None
) -> tuple[apikeys.IssuedKey, dict[str, Any]]:
    """A new key like `key_id`; the old one keeps working for `grace_seconds`."""
    new, old = apikeys.rotate_key(ctx, tenant_id, key_id, grace_seconds, user_id or actor)
    record_audit(ctx, "api_key.rotated", tenant_id, actor, user_id, {"key_id": key_id, "new": new.key_id})
    return new, old


def revoke_api_key(
    ctx: Context, tenant_id: str, key_id: str, actor: str = "admin", user_id: str | None = None
) -> dict[str, Any]:
    doc = apikeys.revoke_key(ctx, tenant_id, key_id, f"revoked by {user_id or actor}")
    record_audit(ctx, "api_key.revoked", tenant_id, actor, user_id, {"key_id": key_id})
    return doc


def set_tenant_secret(
    ctx: Context, tenant_id: str, name: str, value: bytes, actor: str = "admin", user_id: str | None = None
) -> None:
    """Seal and store (or replace) a secret of an existing tenant; the name is checked before anything is sealed."""
    get_tenant(ctx, tenant_id)
    put_secret(ctx, tenant_id, checked_secret_name(name), value)
    record_audit(ctx, "secret.set", tenant_id, actor, user_id, {"name": name})


def delete_tenant_secret(
    ctx: Context, tenant_id: str, name: str, actor: str = "admin", user_id: str | None = None
) -> None:
    """404 when the tenant has no such secret."""
    if ctx.state.get(secret_path(tenant_id, checked_secret_name(name))) is None:
        raise NotFound(f"tenant {tenant_id!r} has no secret {name!r}", {"field": "name"})
    delete_secret(ctx, tenant_id, name)
    record_audit(ctx, "secret.deleted", tenant_id, actor, user_id, {"name": name})


def checked_secret_name(name: str) -> str:
    if not SECRET_NAME.match(name):
        raise BadRequest("secret names are lower-case letters, digits, '_' and '-' (1-63)", {"field": "name"})
    return name


def merged_limits(ctx: Context, tenant_id: str, overrides: dict[str, int]) -> dict[str, int]:
    """The tenant's limit overrides with `overrides` on top: a change names only the limits it changes."""
    current = get_tenant(ctx, tenant_id).get("limits") or {}
    return {**current, **overrides}
