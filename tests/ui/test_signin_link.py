"""`cloudact ui` opens signed in: a one-time link (token in the URL fragment) exchanged once at POST /api/v1/ui/session
for a read-only key of the tenant; a used, unknown or expired token is a 401, and the route is absent off the local
runtime."""

from __future__ import annotations

from datetime import timedelta

from shared.api import signin
from shared.runtime.context import Context
from shared.runtime.settings import Settings
from tests.ui.conftest import ServedHistory


def _token(served: ServedHistory, tenant: str = "acme") -> str:
    ctx = Context(Settings(runtime="embedded", home=served.home))
    try:
        return signin.create_signin_token(ctx, tenant)  # in the server's own state store (shared SQLite file)
    finally:
        ctx.close()


def test_the_banner_prints_a_one_time_link_without_any_key(served: ServedHistory) -> None:
    assert served.signin_link.startswith(f"{served.url}/ui/?tenant=acme#signin=")
    assert "signs this browser in as acme (read-only); the link works once" in served.banner


def test_a_token_is_exchanged_once_for_a_read_only_key(served: ServedHistory) -> None:
    token = _token(served)
    first = served.api("POST", "/api/v1/ui/session", json={"token": token})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["tenant_id"] == "acme" and body["api_key"].startswith("cdp_")
    assert first.headers["Cache-Control"] == "no-store"
    key = body["api_key"]
    assert served.api("GET", "/api/v1/tenants/acme/metadata/executions", key).status_code == 200
    execute = served.api("POST", "/api/v1/tenants/acme/pipelines/execute", key, json={"pipeline_id": "daily_sales"})
    assert execute.status_code == 403  # read-only
    assert served.api("GET", "/api/v1/tenants/testco/metadata/executions", key).status_code == 403
    again = served.api("POST", "/api/v1/ui/session", json={"token": token})
    assert again.status_code == 401 and again.json()["details"]["field"] == "token"
    assert "already used or has expired" in again.json()["message"]
    unknown = served.api("POST", "/api/v1/ui/session", json={"token": "x" * 43})
    assert unknown.status_code == 401
    bad = served.api("POST", "/api/v1/ui/session", json={"token": "short"})
    assert bad.status_code == 400 and bad.json()["details"]["field"] == "token"


def test_an_expired_token_is_refused(served: ServedHistory) -> None:
    ctx = Context(Settings(runtime="embedded", home=served.home))
    try:
        token = signin.create_signin_token(ctx, "acme")
        path = signin._path(token)
        past = (signin.utc_now() - timedelta(seconds=1)).isoformat()
        ctx.state.update_if(path, {"expires_at": past}, ctx.state.get_versioned(path).version)  # type: ignore[union-attr]
    finally:
        ctx.close()
    assert served.api("POST", "/api/v1/ui/session", json={"token": token}).status_code == 401


def test_the_route_is_absent_off_the_local_runtime(tmp_path: object) -> None:
    from shared.api.http import handle

    settings = Settings(runtime="gcp", state="sqlite", keys="local", home=tmp_path)  # type: ignore[arg-type]
    ctx = Context(settings)
    try:
        response = handle(ctx, "POST", "/api/v1/ui/session", {}, {}, b'{"token": "' + b"y" * 43 + b'"}')
    finally:
        ctx.close()
    assert response.status == 404
