"""Tenant administration: onboarding and tenant changes (platform admin credential), API keys and secrets (a
tenant's own key with the `admin` / `secrets:write` scope). Every change is audited with the caller's X-User-ID."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.api.base import ApiRequest, ApiResponse, ChoiceQuery, IntQuery, Route, validate_body
from shared.api.operations_routes import OPERATIONS_ROUTES
from shared.lifecycle.onboarding import onboard_tenant
from shared.plans import PLANS
from shared.runs.admission import usage
from shared.runtime.context import Context
from shared.secrets.store import list_secret_names
from shared.tenancy import apikeys
from shared.tenancy.administration import (
    create_api_key,
    delete_tenant_secret,
    merged_limits,
    revoke_api_key,
    rotate_api_key,
    set_tenant_secret,
)
from shared.tenancy.apikeys import Scope
from shared.tenancy.audit import list_audit
from shared.tenancy.tenants import TENANT_ID, get_tenant, list_tenants, update_tenant

MAX_SECRET_BYTES = 64 * 1024
TENANT_STATUS = ChoiceQuery("status", choices=("active", "suspended", "offboarded"))
TENANTS_LIMIT = IntQuery("limit", default=500, low=1, high=1000)
AUDIT_LIMIT = IntQuery("limit", default=100, low=1, high=1000)
PlanName = Literal["free", "starter", "professional", "enterprise"]
assert set(PlanName.__args__) == set(PLANS), "PlanName must list every plan"  # type: ignore[attr-defined]


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    contact_email: str | None = Field(default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runs_per_day: int | None = Field(default=None, ge=0, le=10_000_000)
    runs_per_month: int | None = Field(default=None, ge=0, le=10_000_000)
    concurrent_runs: int | None = Field(default=None, ge=0, le=10_000_000)
    requests_per_minute: int | None = Field(default=None, ge=0, le=10_000_000)

    def overrides(self) -> dict[str, int]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class OnboardBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(pattern=TENANT_ID.pattern)
    plan: PlanName = "starter"
    profile: Profile = Field(default_factory=Profile)
    limits: Limits = Field(default_factory=Limits)


class TenantPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: PlanName | None = None
    status: Literal["active", "suspended"] | None = None
    limits: Limits | None = None
    profile: Profile | None = None


class KeyCreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    scopes: list[Scope] = Field(default=list(apikeys.DEFAULT_SCOPES), min_length=1)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class RotateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: int = Field(default=86400, ge=0, le=apikeys.MAX_GRACE_S)


class SecretBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str = Field(min_length=1, max_length=MAX_SECRET_BYTES)


def _issued(key: apikeys.IssuedKey) -> dict[str, Any]:
    return {**apikeys.public_key(key.doc), "api_key": key.api_key, "note": "shown once: store it now"}


def _actor(req: ApiRequest) -> str:
    return f"key:{req.principal.key_id}" if req.principal else "admin"


# ---------------------------------------------------------------------------------------------- platform admin


def onboard(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    body: OnboardBody = validate_body(OnboardBody, req.json_body)
    result = onboard_tenant(
        ctx,
        body.tenant_id,
        body.plan,
        body.profile.model_dump(exclude_none=True),
        "admin",
        req.user_id,
        body.limits.overrides(),
    )
    out: dict[str, Any] = {"tenant": result.tenant, "created": result.created}
    if result.first_key is not None:
        out["api_key"] = _issued(result.first_key)
    return ApiResponse(201 if result.created else 200, out, {"Location": f"/api/v1/admin/tenants/{body.tenant_id}"})


def admin_list_tenants(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    tenants = list_tenants(ctx, TENANT_STATUS.read(req.query), TENANTS_LIMIT.read(req.query))
    return ApiResponse(200, {"tenants": tenants, "count": len(tenants)})


def admin_get_tenant(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    tenant = get_tenant(ctx, params["tenant_id"])
    return ApiResponse(200, {"tenant": tenant, "usage": usage(ctx, params["tenant_id"])})


def admin_update_tenant(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    body: TenantPatch = validate_body(TenantPatch, req.json_body)
    changes = body.model_dump(exclude_none=True)
    if body.limits is not None:
        changes["limits"] = merged_limits(ctx, params["tenant_id"], body.limits.overrides())
    return ApiResponse(200, {"tenant": update_tenant(ctx, params["tenant_id"], changes, "admin", req.user_id)})


def admin_audit(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    get_tenant(ctx, params["tenant_id"])
    entries = list_audit(ctx, params["tenant_id"], AUDIT_LIMIT.read(req.query))
    return ApiResponse(200, {"audit": entries, "count": len(entries)})


# ---------------------------------------------------------------------------------------------- API keys


def create_key(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    body: KeyCreateBody = validate_body(KeyCreateBody, req.json_body)
    key = create_api_key(
        ctx, params["tenant_id"], body.name, body.scopes, body.expires_in_days, _actor(req), req.user_id
    )
    return ApiResponse(201, _issued(key))


def list_keys(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    keys = apikeys.list_keys(ctx, params["tenant_id"])
    return ApiResponse(200, {"api_keys": keys, "count": len(keys)})


def rotate_key(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    body: RotateBody = validate_body(RotateBody, req.json_body)
    tenant_id, key_id = params["tenant_id"], params["key_id"]
    new, old = rotate_api_key(ctx, tenant_id, key_id, body.grace_seconds, _actor(req), req.user_id)
    return ApiResponse(201, {"new_key": _issued(new), "old_key": old})


def revoke_key(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    doc = revoke_api_key(ctx, params["tenant_id"], params["key_id"], _actor(req), req.user_id)
    return ApiResponse(200, doc)


# ---------------------------------------------------------------------------------------------- secrets


def list_secrets(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    names = list_secret_names(ctx, params["tenant_id"])
    return ApiResponse(200, {"secrets": [{"name": n} for n in names], "count": len(names)})


def set_secret(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    body: SecretBody = validate_body(SecretBody, req.json_body)
    name = params["name"]
    set_tenant_secret(ctx, params["tenant_id"], name, body.value.encode(), _actor(req), req.user_id)
    return ApiResponse(200, {"name": name, "stored": "envelope-encrypted"})


def remove_secret(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    name = params["name"]
    delete_tenant_secret(ctx, params["tenant_id"], name, _actor(req), req.user_id)
    return ApiResponse(200, {"name": name, "deleted": True})


_A = "/api/v1/admin/tenants"
_T = "/api/v1/tenants/{tenant_id}"
ADMIN_ROUTES: list[Route] = [
    Route("POST", _A, onboard, "admin", "Onboard a tenant (idempotent; the first API key is returned once)",
          body=OnboardBody, success=201, errors=(409,), tag="admin"),
    Route("GET", _A, admin_list_tenants, "admin", "List tenants", tag="admin",
          query=(TENANT_STATUS, TENANTS_LIMIT)),
    Route("GET", f"{_A}/{{tenant_id}}", admin_get_tenant, "admin", "A tenant with its usage", errors=(404,),
          tag="admin"),
    Route("PATCH", f"{_A}/{{tenant_id}}", admin_update_tenant, "admin",
          "Change a tenant's plan, status (suspend/activate), limits or profile", body=TenantPatch, errors=(404,),
          tag="admin"),
    Route("GET", f"{_A}/{{tenant_id}}/audit", admin_audit, "admin", "A tenant's audit trail", errors=(404,),
          tag="admin", query=(AUDIT_LIMIT,)),
    Route("POST", f"{_A}/{{tenant_id}}/api-keys", create_key, "admin", "Issue an API key for a tenant (shown once)",
          body=KeyCreateBody, success=201, errors=(404,), tag="admin"),
    Route("GET", f"{_T}/api-keys", list_keys, "tenant", "List the tenant's API keys (never their secrets)", Scope.ADMIN,
          tag="api-keys"),
    Route("POST", f"{_T}/api-keys", create_key, "tenant", "Create an API key (shown once)", Scope.ADMIN,
          KeyCreateBody, success=201, tag="api-keys"),
    Route("POST", f"{_T}/api-keys/{{key_id}}/rotate", rotate_key, "tenant",
          "Rotate an API key: a new key now, the old one valid for a grace period", Scope.ADMIN, RotateBody,
          success=201, errors=(404, 409), tag="api-keys"),
    Route("DELETE", f"{_T}/api-keys/{{key_id}}", revoke_key, "tenant", "Revoke an API key (idempotent)", Scope.ADMIN,
          errors=(404,), tag="api-keys"),
    Route("GET", f"{_T}/secrets", list_secrets, "tenant", "List the tenant's secret names (never values)",
          Scope.SECRETS_WRITE, tag="secrets"),
    Route("PUT", f"{_T}/secrets/{{name}}", set_secret, "tenant",
          "Store or replace a secret (envelope-encrypted; the value is never returned)", Scope.SECRETS_WRITE,
          SecretBody, tag="secrets"),
    Route("DELETE", f"{_T}/secrets/{{name}}", remove_secret, "tenant", "Delete a secret", Scope.SECRETS_WRITE,
          errors=(404,), tag="secrets"),
    *OPERATIONS_ROUTES,
]  # fmt: skip
