"""Authorisation, table-driven over the whole route table: every tenant route refuses another tenant's key (403),
a missing/malformed/unknown/revoked/expired key (401) and a key without its scope (403); every admin route needs the
admin credential. Each case goes through the real `api` entry point with a Flask request."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from shared.api.routes import ROUTES, Route
from shared.clock import utc_now
from shared.tenancy import apikeys
from tests.manual_clock import ManualClock

SAMPLE = {"tenant_id": "testco", "run_id": "run_0000000000000000000000", "key_id": "0123456789abcdef",
          "pipeline_id": "fan_join", "name": "slack_webhook", "dead_letter_id": "1", "stage_id": "a"}  # fmt: skip
TENANT_ROUTES = [r for r in ROUTES if r.access == "tenant"]
ADMIN_ROUTES = [r for r in ROUTES if r.access == "admin"]


def path_of(route: Route, **overrides: str) -> str:
    return route.path.format(**{**SAMPLE, **overrides})


def call(runtime: Any, route: Route, headers: dict[str, str], **overrides: str) -> Any:
    return runtime.call_api(route.method, path_of(route, **overrides), {}, headers)


def mismatches(runtime: Any, routes: list[Route], headers: dict[str, str], status: int, **over: str) -> list[str]:
    out = []
    for route in routes:
        response = call(runtime, route, headers, **over)
        if response.status != status or set(response.body) != {"error", "message", "details"}:
            out.append(f"{route.method} {route.path}: {response.status} {response.body}")
    return out


def test_the_table_covers_every_route() -> None:
    assert len(TENANT_ROUTES) >= 15 and len(ADMIN_ROUTES) >= 5
    assert all(isinstance(r.scope, apikeys.Scope) for r in TENANT_ROUTES)
    assert all(r.scope is None for r in ROUTES if r.access != "tenant")


def test_every_scope_is_needed_by_some_route_and_no_route_needs_another() -> None:
    """The one scope list (apikeys.Scope) and the route table agree both ways: a scope no route asks for could be
    granted to no effect, a route's scope missing from the list could never be granted."""
    assert {r.scope for r in TENANT_ROUTES} == set(apikeys.Scope)
    assert set(apikeys.SCOPES) == {s.value for s in apikeys.Scope}
    assert set(apikeys.DEFAULT_SCOPES) < set(apikeys.Scope) and apikeys.Scope.ADMIN not in apikeys.DEFAULT_SCOPES
    assert {r.access for r in ROUTES} == {"public", "tenant", "admin"}


def test_another_tenants_key_is_403_on_every_tenant_route(runtime: Any) -> None:
    acme_admin_key = runtime.api_keys["acme"]  # admin scope: only the tenant can be wrong
    assert mismatches(runtime, TENANT_ROUTES, {"X-API-Key": acme_admin_key}, 403) == []
    # the same key on an unknown tenant's paths: 403 too (existence is not revealed)
    assert mismatches(runtime, TENANT_ROUTES, {"X-API-Key": acme_admin_key}, 403, tenant_id="nobody_here") == []


@pytest.mark.parametrize(
    "key",
    [None, "", "garbage", "cdp_0123456789abcdef_" + "A" * 43, "Bearer cdp_x"],
    ids=["missing", "empty", "malformed", "unknown", "wrong-shape"],
)
def test_missing_or_invalid_key_is_401_on_every_tenant_route(runtime: Any, key: str | None) -> None:
    headers = {} if key is None else {"X-API-Key": key}
    assert mismatches(runtime, TENANT_ROUTES, headers, 401) == []


def test_revoked_and_expired_keys_are_401_on_every_tenant_route(runtime: Any, ticking_clock: ManualClock) -> None:
    ctx = runtime.context
    revoked = apikeys.issue_key(ctx, "testco", "to revoke", ["admin"])
    apikeys.revoke_key(ctx, "testco", revoked.key_id)
    expiring = apikeys.issue_key(ctx, "testco", "short", ["admin"], expires_at=utc_now() + timedelta(hours=1))
    ticking_clock.advance(timedelta(hours=1))
    assert mismatches(runtime, TENANT_ROUTES, {"X-API-Key": revoked.api_key}, 401) == []
    assert mismatches(runtime, TENANT_ROUTES, {"X-API-Key": expiring.api_key}, 401) == []
    body = call(runtime, TENANT_ROUTES[0], {"X-API-Key": expiring.api_key}).body
    assert "expired" in body["message"]


def test_a_key_without_the_routes_scope_is_403(runtime: Any) -> None:
    wrong = []
    for route in TENANT_ROUTES:
        others = [s for s in apikeys.SCOPES if s not in (route.scope, "admin")]
        key = apikeys.issue_key(runtime.context, "testco", "narrow", others).api_key
        response = call(runtime, route, {"X-API-Key": key})
        if response.status != 403 or response.body["details"].get("scope") != route.scope:
            wrong.append(f"{route.method} {route.path}: {response.status} {response.body}")
    assert wrong == []


def test_admin_routes_need_the_admin_credential(runtime: Any) -> None:
    tenant_admin_key = runtime.api_keys["testco"]
    for headers in (
        {},
        {"X-Admin-Token": "x" * 40},
        {"X-API-Key": tenant_admin_key},
        {"X-Admin-Token": tenant_admin_key},
    ):
        assert mismatches(runtime, ADMIN_ROUTES, headers, 401) == [], headers
    ok = runtime.call_api("GET", "/api/v1/admin/tenants", headers={"X-Admin-Token": runtime.admin_token})
    assert ok.status == 200 and {t["tenant_id"] for t in ok.body["tenants"]} == set(runtime.api_keys)


def test_suspended_tenant_is_403_and_the_right_key_passes(runtime: Any) -> None:
    key = {"X-API-Key": runtime.api_keys["testco"]}
    assert runtime.call_api("GET", "/api/v1/tenants/testco/usage", headers=key).status == 200
    admin = {"X-Admin-Token": runtime.admin_token}
    assert runtime.call_api("PATCH", "/api/v1/admin/tenants/testco", {"status": "suspended"}, admin).status == 200
    refused = runtime.call_api("GET", "/api/v1/tenants/testco/usage", headers=key)
    assert refused.status == 403 and "suspended" in refused.body["message"]


def test_public_routes_need_nothing(runtime: Any) -> None:
    assert runtime.call_api("GET", "/api/v1/health").status == 200
    assert runtime.call_api("GET", "/api/v1/openapi.json").body["openapi"] == "3.1.0"
