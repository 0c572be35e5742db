"""Tenant administration over HTTP: onboarding (admin credential, idempotent, first key once), key management
(create / list / rotate with grace / revoke) and secrets (stored sealed, never returned)."""

from __future__ import annotations

import json
from typing import Any

from shared.secrets.store import get_secret, secret_path
from tests.conftest import auth
from tests.manual_clock import ManualClock


def admin(runtime: Any) -> dict[str, str]:
    return {"X-Admin-Token": runtime.admin_token, "X-User-ID": "ops@example.com"}


def test_onboarding_over_http_is_idempotent_and_shows_the_first_key_once(runtime: Any) -> None:
    body = {"tenant_id": "initech", "plan": "professional", "profile": {"name": "Globex", "contact_email": "a@b.co"}}
    created = runtime.call_api("POST", "/api/v1/admin/tenants", body, admin(runtime))
    assert created.status == 201 and created.body["created"] and created.body["tenant"]["plan"] == "professional"
    key = created.body["api_key"]["api_key"]
    assert key.startswith("cdp_") and created.body["api_key"]["scopes"] == ["admin"]
    again = runtime.call_api("POST", "/api/v1/admin/tenants", body, admin(runtime))
    assert again.status == 200 and not again.body["created"] and "api_key" not in again.body
    conflict = runtime.call_api("POST", "/api/v1/admin/tenants", {**body, "plan": "starter"}, admin(runtime))
    assert conflict.status == 409 and conflict.body["details"]["field"] == "plan"
    assert runtime.context.warehouse_for("initech").table_exists("initech_metadata.pipeline_executions")
    listed = runtime.call_api("GET", "/api/v1/tenants/initech/pipelines", headers={"X-API-Key": key})
    assert listed.status == 200 and listed.body["count"] == 0  # onboarded; no pipelines deployed yet
    shown = runtime.call_api("GET", "/api/v1/admin/tenants/initech", headers=admin(runtime)).body
    assert shown["usage"]["runs_today"] == 0 and shown["tenant"]["profile"]["name"] == "Globex"
    audit = runtime.call_api("GET", "/api/v1/admin/tenants/initech/audit", headers=admin(runtime)).body["audit"]
    assert [(a["action"], a["user_id"]) for a in audit] == [("tenant.onboarded", "ops@example.com")]


def test_onboarding_rejects_bad_input_with_the_field_named(runtime: Any) -> None:
    for body, field in (
        ({"tenant_id": "Bad-Id"}, "tenant_id"),
        ({"tenant_id": "ab"}, "tenant_id"),
        ({"tenant_id": "initech", "plan": "platinum"}, "plan"),
        ({"tenant_id": "initech", "limits": {"runs_per_day": -5}}, "limits.runs_per_day"),
        ({"tenant_id": "initech", "surprise": True}, "surprise"),
    ):
        response = runtime.call_api("POST", "/api/v1/admin/tenants", body, admin(runtime))
        assert response.status == 400 and response.body["details"]["field"] == field, (body, response.body)


def test_plan_change_and_suspension_through_patch(runtime: Any) -> None:
    path = "/api/v1/admin/tenants/testco"
    changed = runtime.call_api("PATCH", path, {"plan": "enterprise", "limits": {"runs_per_day": 9}}, admin(runtime))
    assert changed.status == 200 and changed.body["tenant"]["plan"] == "enterprise"
    usage = runtime.call_api("GET", "/api/v1/tenants/testco/usage", headers=auth(runtime, "testco")).body
    assert usage["plan"]["runs_per_day"] == 9 and usage["plan"]["name"] == "enterprise"
    assert runtime.call_api("PATCH", path, {}, admin(runtime)).status == 400
    assert (
        runtime.call_api("PATCH", "/api/v1/admin/tenants/nobody_here", {"status": "active"}, admin(runtime)).status
        == 404
    )


def test_key_lifecycle_create_list_rotate_revoke(runtime: Any, ticking_clock: ManualClock) -> None:
    tenant_admin = auth(runtime, "testco")
    base = "/api/v1/tenants/testco/api-keys"
    made = runtime.call_api("POST", base, {"name": "ci", "scopes": ["runs:read"], "expires_in_days": 30}, tenant_admin)
    assert made.status == 201 and made.body["scopes"] == ["runs:read"] and made.body["expires_at"]
    ci_key, ci_id = made.body["api_key"], made.body["key_id"]
    listed = runtime.call_api("GET", base, headers=tenant_admin).body["api_keys"]
    assert ci_id in {k["key_id"] for k in listed}
    assert ci_key not in json.dumps(listed) and all("digest" not in k for k in listed)
    reader = {"X-API-Key": ci_key}
    assert runtime.call_api("GET", "/api/v1/tenants/testco/metadata/executions", headers=reader).status == 200
    assert runtime.call_api("GET", base, headers=reader).status == 403  # runs:read cannot manage keys
    rotated = runtime.call_api("POST", f"{base}/{ci_id}/rotate", {"grace_seconds": 1}, tenant_admin)
    assert rotated.status == 201 and rotated.body["old_key"]["replaced_by"] == rotated.body["new_key"]["key_id"]
    new_reader = {"X-API-Key": rotated.body["new_key"]["api_key"]}
    for headers in (reader, new_reader):  # both work during the grace period
        assert runtime.call_api("GET", "/api/v1/tenants/testco/metadata/executions", headers=headers).status == 200
    ticking_clock.advance(1.1)
    expired = runtime.call_api("GET", "/api/v1/tenants/testco/metadata/executions", headers=reader)
    assert expired.status == 401 and "expired" in expired.body["message"]
    new_id = rotated.body["new_key"]["key_id"]
    revoked = runtime.call_api("DELETE", f"{base}/{new_id}", None, tenant_admin)
    assert revoked.status == 200 and revoked.body["revoked_at"] and not revoked.body["active"]
    assert runtime.call_api("GET", "/api/v1/tenants/testco/usage", headers=new_reader).status == 401
    assert runtime.call_api("DELETE", f"{base}/{new_id}", None, tenant_admin).status == 200  # idempotent
    assert runtime.call_api("DELETE", f"{base}/ffffffffffffffff", None, tenant_admin).status == 404
    bad_scope = runtime.call_api("POST", base, {"name": "x", "scopes": ["runs:delete"]}, tenant_admin)
    assert bad_scope.status == 400 and bad_scope.body["details"]["field"].startswith("scopes")
    issued_by_admin = runtime.call_api("POST", "/api/v1/admin/tenants/testco/api-keys", {"name": "ops"}, admin(runtime))
    assert issued_by_admin.status == 201 and "admin" not in issued_by_admin.body["scopes"]


def test_secrets_are_stored_sealed_and_never_returned(runtime: Any) -> None:
    headers = auth(runtime, "testco")
    path = "/api/v1/tenants/testco/secrets/slack_webhook"
    value = "https://hooks.slack.example/services/T000/B000/XXXXSECRETXXXX"
    stored = runtime.call_api("PUT", path, {"value": value}, headers)
    assert stored.status == 200 and value not in json.dumps(stored.body)
    doc = runtime.context.state.get(secret_path("testco", "slack_webhook"))
    assert "XXXXSECRETXXXX" not in json.dumps(doc)
    assert get_secret(runtime.context, "testco", "slack_webhook").decode() == value
    listed = runtime.call_api("GET", "/api/v1/tenants/testco/secrets", headers=headers).body
    assert listed == {"secrets": [{"name": "slack_webhook"}], "count": 1}
    assert runtime.call_api("PUT", "/api/v1/tenants/testco/secrets/Bad Name!", {"value": "x"}, headers).status in (
        400,
        404,
    )
    bad = runtime.call_api("PUT", "/api/v1/tenants/testco/secrets/UPPER", {"value": "x"}, headers)
    assert bad.status == 400 and bad.body["details"]["field"] == "name"
    assert runtime.call_api("PUT", path, {"value": ""}, headers).status == 400
    assert runtime.call_api("DELETE", path, None, headers).status == 200
    assert runtime.call_api("DELETE", path, None, headers).status == 404
    audit = runtime.call_api("GET", "/api/v1/admin/tenants/testco/audit", headers=admin(runtime)).body["audit"]
    assert {"secret.set", "secret.deleted"} <= {a["action"] for a in audit}
