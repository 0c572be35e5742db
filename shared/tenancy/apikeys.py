"""API keys: `cdp_<key_id>_<secret>`, stored only as HMAC-SHA256(pepper, key_id:secret) at `api_keys/{key_id}`.

* O(1) lookup: the key id is in the key itself, so checking a key is one document read (or a cache hit), never a scan.
* Constant-time compare (`hmac.compare_digest`), and a digest is computed even for unknown key ids.
* The secret is returned once, by `issue_key`; only its HMAC is stored (see `credentials` for the pepper).
* Rotation issues a new key with the same tenant, name and scopes; the old one keeps working for a grace period.
* Validated key documents are cached per instance for `KEY_CACHE_TTL_S` seconds: a key revoked (or a tenant
  suspended) on another instance is refused here at most that long afterwards; on the instance that revoked it, at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.clock import iso, parse_iso, utc_now
from shared.errors import BadRequest, Conflict, NotFound, Unauthorized
from shared.ports.state import Filter, set_fields_if
from shared.runtime.caches import DocumentCache
from shared.runtime.context import Context
from shared.tenancy.cache import TtlCache
from shared.tenancy.credentials import api_key_pepper

KEY_PREFIX = "cdp_"
KEY_ID = re.compile(r"^[0-9a-f]{16}$")
RAW_KEY = re.compile(r"^cdp_([0-9a-f]{16})_([A-Za-z0-9_\-]{20,128})$")
KEY_CACHE_TTL_S = 30.0
KEY_CACHE_MAX = 100_000
MAX_GRACE_S = 30 * 86400


class Scope(StrEnum):
    """What an API key may do on its tenant: the one list. Every tenant route names one of these (Route.scope) and
    every one is needed by some route (tests/integration/test_api_auth.py); the key-creation body and the OpenAPI
    document take their choices from here, and `check_scopes` (the CLI's `--scope` too) checks against it."""

    PIPELINES_READ = "pipelines:read"
    PIPELINES_EXECUTE = "pipelines:execute"
    RUNS_READ = "runs:read"
    RUNS_CANCEL = "runs:cancel"
    USAGE_READ = "usage:read"
    SECRETS_WRITE = "secrets:write"
    ADMIN = "admin"
    """Tenant administration (keys, secrets); implies every other scope of the same tenant."""


SCOPES = tuple(scope.value for scope in Scope)
DEFAULT_SCOPES = (Scope.PIPELINES_READ, Scope.PIPELINES_EXECUTE, Scope.RUNS_READ, Scope.RUNS_CANCEL, Scope.USAGE_READ)
"""A new key's scopes unless it asks for others: all but key/secret administration."""


@dataclass(frozen=True)
class IssuedKey:
    key_id: str
    api_key: str
    """The full key: shown once, never stored."""
    doc: dict[str, Any]


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant's API key (tenant_id + scopes) and the audit-only X-User-ID."""

    key_id: str
    tenant_id: str
    scopes: frozenset[str]
    user_id: str | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or Scope.ADMIN in self.scopes


def key_path(key_id: str) -> str:
    return f"api_keys/{key_id}"


def _cache(ctx: Context) -> DocumentCache:
    caches = ctx.caches
    with caches.lock:
        if caches.api_keys is None:
            caches.api_keys = TtlCache[dict[str, Any]](KEY_CACHE_TTL_S, KEY_CACHE_MAX)
        return caches.api_keys


def _hmac(pepper: bytes, key_id: str, secret: str) -> bytes:
    return hmac.new(pepper, f"{key_id}:{secret}".encode(), hashlib.sha256).digest()


def check_scopes(scopes: list[str]) -> list[str]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise BadRequest(f"scopes must be a non-empty subset of {', '.join(SCOPES)}", {"field": "scopes"})
    return sorted({Scope(s).value for s in scopes})  # plain strings: they are stored in the key document


def issue_key(
    ctx: Context,
    tenant_id: str,
    name: str,
    scopes: list[str] | tuple[str, ...] = DEFAULT_SCOPES,
    expires_at: datetime | None = None,
    created_by: str | None = None,
    rotated_from: str | None = None,
) -> IssuedKey:
    scope_list = check_scopes(list(scopes))
    now = utc_now()
    if expires_at is not None and expires_at <= now:
        raise BadRequest("expires_at must be in the future", {"field": "expires_at"})
    pepper = api_key_pepper(ctx)
    while True:
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        doc: dict[str, Any] = {
            "key_id": key_id,
            "tenant_id": tenant_id,
            "name": name,
            "scopes": scope_list,
            "digest": _hmac(pepper, key_id, secret).hex(),
            "created_at": iso(now),
            "created_by": created_by,
            "expires_at": iso(expires_at) if expires_at else None,
            "revoked_at": None,
            "rotated_from": rotated_from,
            "replaced_by": None,
        }
        if ctx.state.create(key_path(key_id), doc):  # 64-bit ids: a collision is retried, never overwritten
            return IssuedKey(key_id, f"{KEY_PREFIX}{key_id}_{secret}", doc)


def public_key(doc: dict[str, Any]) -> dict[str, Any]:
    """What list/get show: never the digest."""
    now = utc_now()
    out = {k: v for k, v in doc.items() if k != "digest"}
    out["prefix"] = f"{KEY_PREFIX}{doc['key_id']}_"
    out["active"] = _refusal(doc, now) is None
    return out


def _refusal(doc: dict[str, Any], now: datetime) -> str | None:
    if doc.get("revoked_at"):
        return "API key has been revoked"
    if doc.get("expires_at") and now >= parse_iso(doc["expires_at"]):
        return "API key has expired"
    return None


def authenticate(ctx: Context, raw: str | None, user_id: str | None = None) -> Principal:
    """The principal of an `X-API-Key` value, or 401 (missing, malformed, unknown, wrong secret, revoked, expired)."""
    if not raw:
        raise Unauthorized("this route needs an API key in the X-API-Key header", {"field": "X-API-Key"})
    match = RAW_KEY.match(raw)
    if match is None:
        raise Unauthorized("malformed API key (expected cdp_<key_id>_<secret>)", {"field": "X-API-Key"})
    key_id, secret = match.groups()
    cache = _cache(ctx)
    doc = cache.get(key_id)
    if doc is None:
        doc = ctx.state.get(key_path(key_id))
        if doc is not None:
            cache.put(key_id, doc)
    actual = _hmac(api_key_pepper(ctx), key_id, secret)
    expected = bytes.fromhex(doc["digest"]) if doc is not None else bytes(32)
    if not hmac.compare_digest(actual, expected) or doc is None:
        raise Unauthorized("invalid API key", {"field": "X-API-Key"})
    refusal = _refusal(doc, utc_now())
    if refusal:
        raise Unauthorized(refusal, {"field": "X-API-Key", "key_id": key_id})
    return Principal(key_id, str(doc["tenant_id"]), frozenset(doc.get("scopes") or ()), user_id)


def list_keys(ctx: Context, tenant_id: str) -> list[dict[str, Any]]:
    docs = [d for _, d in ctx.state.list("api_keys", [Filter("tenant_id", "==", tenant_id)])]
    return [public_key(d) for d in sorted(docs, key=lambda d: str(d["created_at"]))]


def get_key(ctx: Context, tenant_id: str, key_id: str) -> dict[str, Any]:
    doc = ctx.state.get(key_path(key_id)) if KEY_ID.match(key_id) else None
    if doc is None or doc.get("tenant_id") != tenant_id:
        raise NotFound(f"tenant {tenant_id!r} has no API key {key_id!r}", {"field": "key_id"})
    return doc


def revoke_key(ctx: Context, tenant_id: str, key_id: str, reason: str | None = None) -> dict[str, Any]:
    """Idempotent: revoking a revoked key changes nothing and answers the same."""
    get_key(ctx, tenant_id, key_id)
    set_fields_if(
        ctx.state,
        key_path(key_id),
        {"revoked_at": iso(utc_now()), "revoked_reason": reason},
        lambda d: not d.get("revoked_at"),
    )
    _cache(ctx).drop(key_id)
    return public_key(get_key(ctx, tenant_id, key_id))


def rotate_key(
    ctx: Context, tenant_id: str, key_id: str, grace_seconds: int, created_by: str | None = None
) -> tuple[IssuedKey, dict[str, Any]]:
    """A new key like the old one; the old one stays valid for `grace_seconds` (never longer than it would have)."""
    if not 0 <= grace_seconds <= MAX_GRACE_S:
        raise BadRequest(f"grace_seconds must be in [0, {MAX_GRACE_S}]", {"field": "grace_seconds"})
    old = get_key(ctx, tenant_id, key_id)
    now = utc_now()
    if _refusal(old, now):
        raise Conflict(f"key {key_id} is not active ({_refusal(old, now)}); create a new key", {"field": "key_id"})
    if old.get("replaced_by"):
        raise Conflict(f"key {key_id} was already rotated to {old['replaced_by']}", {"field": "key_id"})
    expires = parse_iso(old["expires_at"]) if old.get("expires_at") else None
    new = issue_key(ctx, tenant_id, str(old["name"]), old["scopes"], expires, created_by, rotated_from=key_id)
    grace_end = now + timedelta(seconds=grace_seconds)
    if expires is not None:
        grace_end = min(grace_end, expires)
    won = set_fields_if(
        ctx.state,
        key_path(key_id),
        {"replaced_by": new.key_id, "expires_at": iso(grace_end)},
        lambda d: not d.get("replaced_by") and not d.get("revoked_at"),
    )
    if not won:  # a concurrent rotation won: withdraw ours so exactly one successor exists
        revoke_key(ctx, tenant_id, new.key_id, "lost a concurrent rotation")
        raise Conflict(f"key {key_id} was rotated concurrently", {"field": "key_id"})
    _cache(ctx).drop(key_id)
    return new, public_key(get_key(ctx, tenant_id, key_id))


def verify_raw_key(ctx: Context, raw: str) -> Principal | None:
    """Like `authenticate` but answers None instead of raising (used to reuse a stored CLI key)."""
    try:
        return authenticate(ctx, raw)
    except Unauthorized:
        return None
