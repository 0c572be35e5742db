"""One-time sign-in links for the local run-history page: `cloudact ui` opens signed in.

`cloudact ui` makes a random token, keeps only its SHA-256 in the state store (`ui_signin/{digest}`, valid for
SIGNIN_TTL) and prints `http://127.0.0.1:PORT/ui/?tenant=T#signin=TOKEN`. The token is in the URL fragment, which the
browser never sends to a server nor puts in a Referer. The page posts it once to `POST /api/v1/ui/session`, which
marks it used with a compare-and-set (a second exchange, or one after SIGNIN_TTL, is a 401) and answers a fresh
read-only API key of that tenant (`runs:read`, `pipelines:read`, expiring after SESSION_TTL): the page's session,
kept in the tab's sessionStorage like a key typed into the form. The route exists only on the embedded runtime with
the local keyring; anywhere else it answers 404, so a deployed API has no such door.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.api.base import ApiRequest, ApiResponse, validate_body
from shared.clock import iso, parse_iso, utc_now
from shared.errors import NotFound, Unauthorized
from shared.runtime.context import Context
from shared.tenancy.apikeys import Scope

COLLECTION = "ui_signin"
SIGNIN_TTL = timedelta(minutes=10)
"""How long a printed link can be used (once)."""
SESSION_TTL = timedelta(hours=12)
"""How long the read-only key the link is exchanged for stays valid."""
SESSION_SCOPES = (Scope.RUNS_READ, Scope.PIPELINES_READ)
SESSION_KEY_NAME = "cloudact ui sign-in (local, read-only)"


class SessionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=20, max_length=200, description="The one-time token from `cloudact ui`'s link.")


def _path(token: str) -> str:
    return f"{COLLECTION}/{hashlib.sha256(token.encode()).hexdigest()}"


def local_signin_enabled(ctx: Context) -> bool:
    return ctx.settings.runtime == "embedded" and ctx.settings.keys == "local"


def create_signin_token(ctx: Context, tenant_id: str) -> str:
    """A token `POST /api/v1/ui/session` exchanges once, within SIGNIN_TTL, for a read-only key of `tenant_id`."""
    token = secrets.token_urlsafe(32)
    now = utc_now()
    doc = {"tenant_id": tenant_id, "created_at": iso(now), "expires_at": iso(now + SIGNIN_TTL), "used_at": None}
    ctx.state.create(_path(token), doc)
    return token


def exchange_signin_token(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    """The handler of `POST /api/v1/ui/session`: the token for `{tenant_id, api_key, expires_at}`, once."""
    from shared.tenancy.apikeys import issue_key

    if not local_signin_enabled(ctx):
        raise NotFound(f"no route for POST {req.path}", {"path": req.path})
    body: SessionBody = validate_body(SessionBody, req.json_body)
    path = _path(body.token)
    now = utc_now()
    refused = Unauthorized(
        "this sign-in link was already used or has expired: run `cloudact ui` again, or sign in with an API key",
        {"field": "token"},
    )
    current = ctx.state.get_versioned(path)
    if current is None or current.data.get("used_at") or parse_iso(str(current.data["expires_at"])) <= now:
        raise refused
    if not ctx.state.update_if(path, {"used_at": iso(now)}, current.version):
        raise refused  # another exchange of the same token won
    tenant_id = str(current.data["tenant_id"])
    issued = issue_key(
        ctx, tenant_id, SESSION_KEY_NAME, list(SESSION_SCOPES), expires_at=now + SESSION_TTL, created_by="ui-signin"
    )
    out: dict[str, Any] = {"tenant_id": tenant_id, "api_key": issued.api_key, "expires_at": iso(now + SESSION_TTL)}
    return ApiResponse(200, out, {"Cache-Control": "no-store"})
