"""Server-side credentials: the API-key pepper and the platform admin credential.

Where they come from (first match wins):

* API-key pepper (the HMAC key API-key secrets are stored under; never leaves the server):
  1. `CLOUDACT_API_KEY_PEPPER` - a Secret Manager secret mounted as an env var (`--set-secrets`), >= 32 characters;
  2. otherwise a random 32-byte pepper generated once and stored *sealed with the key service* (Cloud KMS in gcp, the
     local keyring embedded) at `platform/api_key_pepper`: a copy of the state store alone cannot verify guesses.
* Admin credential (header `X-Admin-Token`, required by every `/api/v1/admin/...` route; there is no open route):
  1. `CLOUDACT_ADMIN_TOKEN` - a Secret Manager secret mounted as an env var, >= 32 characters;
  2. `CLOUDACT_ADMIN_TOKEN_SEALED` - base64 of a record sealed with Cloud KMS (`cloudact tenants seal-admin-token`);
  3. only when the key service is the local keyring (embedded/emulators, never gcp): a random token kept in
     `.cloudact/credentials.json` (mode 0600), created on first use. `cloudact tenants admin-token` prints it.
  With none of these the admin routes answer 503: the API never runs with an open or default admin credential.

The variables are read once, into `Settings` (api_key_pepper, admin_token, admin_token_sealed; the secrets as
SecretStr, so they never show in a repr or a log line). Both values are cached per instance once resolved
(`Context.caches`: one KMS decrypt per cold start).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from shared.errors import ServiceUnavailable, TerminalError, Unauthorized
from shared.runtime.context import Context
from shared.runtime.settings import Settings
from shared.secrets.envelope import open_sealed, seal

PEPPER_ENV = "CLOUDACT_API_KEY_PEPPER"
ADMIN_TOKEN_ENV = "CLOUDACT_ADMIN_TOKEN"
ADMIN_TOKEN_SEALED_ENV = "CLOUDACT_ADMIN_TOKEN_SEALED"
PLATFORM = "__platform__"
"""The AAD owner of platform secrets; not a valid tenant id, so no tenant record can ever be swapped in."""
PEPPER_DOC = "platform/api_key_pepper"
CREDENTIALS_FILE = "credentials.json"
MIN_SECRET_CHARS = 32


def api_key_pepper(ctx: Context) -> bytes:
    cached = ctx.caches.api_key_pepper
    if cached is not None:
        return cached
    configured = ctx.settings.api_key_pepper
    if configured is not None:
        if len(configured.get_secret_value()) < MIN_SECRET_CHARS:
            raise TerminalError(f"{PEPPER_ENV} must be at least {MIN_SECRET_CHARS} characters")
        pepper = configured.get_secret_value().encode()
    else:
        doc = ctx.state.get(PEPPER_DOC)
        if doc is None:
            fresh = secrets.token_bytes(32)
            ctx.state.create(PEPPER_DOC, {"sealed": seal(ctx.keys, fresh, PLATFORM, "api_key_pepper")})
            doc = ctx.state.get(PEPPER_DOC)  # whoever created it first wins; everyone uses that one
        if doc is None:
            raise TerminalError(f"{PEPPER_DOC} vanished right after it was created")
        pepper = open_sealed(ctx.keys, doc["sealed"], PLATFORM, "api_key_pepper")
    ctx.caches.api_key_pepper = pepper
    return pepper


# ---------------------------------------------------------------------------------------------- admin credential


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _configured_admin_token(ctx: Context) -> str | None:
    plain = ctx.settings.admin_token
    if plain is not None:
        return plain.get_secret_value()
    sealed = ctx.settings.admin_token_sealed
    if sealed:
        try:
            record = json.loads(base64.b64decode(sealed, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise TerminalError(f"{ADMIN_TOKEN_SEALED_ENV} is not base64 of a sealed record") from exc
        return open_sealed(ctx.keys, record, PLATFORM, "admin_token").decode()
    if ctx.settings.keys == "local":
        return str(ensure_local_credentials(ctx.settings)["admin_token"])
    return None


def require_admin(ctx: Context, presented: str | None) -> None:
    """401 unless `presented` equals the admin credential (compared as SHA-256 digests, in constant time)."""
    digest = ctx.caches.admin_token_digest
    if digest is None:
        token = _configured_admin_token(ctx)
        if not token or len(token) < MIN_SECRET_CHARS:
            raise ServiceUnavailable(
                f"no admin credential is configured: set {ADMIN_TOKEN_ENV} (>= {MIN_SECRET_CHARS} chars) "
                f"or {ADMIN_TOKEN_SEALED_ENV}",
                60,
            )
        digest = _digest(token)
        ctx.caches.admin_token_digest = digest
    if not presented:
        raise Unauthorized(
            "this route needs the admin credential in the X-Admin-Token header", {"field": "X-Admin-Token"}
        )
    if not hmac.compare_digest(_digest(presented), digest):
        raise Unauthorized("invalid admin credential", {"field": "X-Admin-Token"})


def seal_admin_token(ctx: Context, token: str) -> str:
    """The value for CLOUDACT_ADMIN_TOKEN_SEALED: the token sealed with this deployment's key service."""
    if len(token) < MIN_SECRET_CHARS:
        raise TerminalError(f"the admin token must be at least {MIN_SECRET_CHARS} characters")
    record = seal(ctx.keys, token.encode(), PLATFORM, "admin_token")
    return base64.b64encode(json.dumps(record).encode()).decode()


# ---------------------------------------------------------------------------------------------- local file


def credentials_path(settings: Settings) -> Path:
    return settings.home / CREDENTIALS_FILE


def load_local_credentials(settings: Settings) -> dict[str, Any]:
    path = credentials_path(settings)
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_local_credentials(settings: Settings, data: dict[str, Any]) -> None:
    """Atomic replace, mode 0600: the file holds the local admin token and the CLI's API keys."""
    path = credentials_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".credentials-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def ensure_local_credentials(settings: Settings) -> dict[str, Any]:
    """The local credentials file, created with a fresh admin token when missing (embedded/emulators only)."""
    data = load_local_credentials(settings)
    if not isinstance(data.get("admin_token"), str) or len(data["admin_token"]) < MIN_SECRET_CHARS:
        data["admin_token"] = "cdpadm_" + secrets.token_urlsafe(32)
        data.setdefault("api_keys", {})
        save_local_credentials(settings, data)
    return data
