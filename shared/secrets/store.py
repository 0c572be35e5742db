"""Tenant secrets at rest: sealed records in the state store under `tenants/{tenant_id}/secrets/{name}`.

Only ciphertext is ever written; reading a secret that does not exist is a TerminalError naming it (a step or channel
configured with a missing secret cannot succeed by retrying).
"""

from __future__ import annotations

import re

from shared.clock import iso, utc_now
from shared.errors import TerminalError
from shared.runtime.context import Context
from shared.secrets.envelope import open_sealed, seal

SECRET_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,62}$")


def secret_path(tenant_id: str, name: str) -> str:
    if not SECRET_NAME.match(name):
        raise TerminalError(f"invalid secret name {name!r}: lower-case letters, digits, '_' and '-' only")
    return f"tenants/{tenant_id}/secrets/{name}"


def put_secret(ctx: Context, tenant_id: str, name: str, value: bytes) -> None:
    record = seal(ctx.keys, value, tenant_id, name)
    ctx.state.set(secret_path(tenant_id, name), {"sealed": record, "name": name, "updated_at": iso(utc_now())})


def get_secret(ctx: Context, tenant_id: str, name: str) -> bytes:
    doc = ctx.state.get(secret_path(tenant_id, name))
    if doc is None:
        raise TerminalError(f"tenant {tenant_id!r} has no secret {name!r} (set it with `cloudact secrets set`)")
    return open_sealed(ctx.keys, doc["sealed"], tenant_id, name)


def delete_secret(ctx: Context, tenant_id: str, name: str) -> None:
    ctx.state.delete(secret_path(tenant_id, name))


def list_secret_names(ctx: Context, tenant_id: str) -> list[str]:
    return sorted(doc["name"] for _, doc in ctx.state.list(f"tenants/{tenant_id}/secrets"))
