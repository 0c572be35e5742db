"""What every route module shares: the request/response types, the Route table entry and body/query validation.

A Route says everything about an endpoint in one place - method, path template, who may call it (public, a tenant's
API key with a scope, or the platform admin credential), its body model and query parameters - so the dispatcher,
the authorisation checks and the OpenAPI document are all derived from the same table and cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from shared.errors import BadRequest
from shared.runtime.context import Context
from shared.tenancy.apikeys import Principal

Access = Literal["public", "tenant", "admin"]


@dataclass
class ApiRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Lower-cased names."""
    json_body: Any = None
    principal: Principal | None = None
    """Set by the dispatcher for tenant routes: the API key's tenant and scopes, and the audit-only X-User-ID."""
    response_headers: dict[str, str] = field(default_factory=dict)
    """Headers every response to this request carries, errors included (X-RateLimit-*)."""

    @property
    def user_id(self) -> str | None:
        value = self.headers.get("x-user-id")
        return value[:200] if value else None


@dataclass
class ApiResponse:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Context, ApiRequest, dict[str, str]], ApiResponse]


@dataclass(frozen=True)
class QueryParam:
    name: str
    schema: dict[str, Any]
    description: str = ""


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    """OpenAPI path template, e.g. `/api/v1/tenants/{tenant_id}/metadata/executions/{run_id}`."""
    handler: Handler
    access: Access
    summary: str
    scope: str | None = None
    """For `tenant` routes: the API-key scope needed (`admin` keys have every scope of their tenant)."""
    body: type[BaseModel] | None = None
    query: tuple[QueryParam, ...] = ()
    success: int = 200
    errors: tuple[int, ...] = ()
    """Error statuses this route can answer beyond the ones every route of its access level can."""
    tag: str = "runs"

    @property
    def pattern(self) -> re.Pattern[str]:
        return _compile(self.path)

    @property
    def params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)


_SEGMENT = r"[A-Za-z0-9_\-.]{1,100}"
_PATTERNS: dict[str, re.Pattern[str]] = {}


def _compile(template: str) -> re.Pattern[str]:
    hit = _PATTERNS.get(template)
    if hit is None:
        parts = re.split(r"{(\w+)}", template)  # literal, name, literal, name, ..., literal
        regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>{_SEGMENT})" for i, p in enumerate(parts))
        hit = _PATTERNS[template] = re.compile(f"^{regex}$")
    return hit


def validate_body(model: type[BaseModel], body: Any) -> Any:
    """The body as `model`, or 400 naming the first offending field (and listing all of them)."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object", {"field": "<body>"})
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "<body>"
        raise BadRequest(
            f"{name}: {first['msg']}",
            {
                "field": name,
                "errors": [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()],
            },
        ) from exc


def int_param(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(f"{name} must be an integer in [{low}, {high}]", {"field": name})
    return int(raw)


def timestamp_param(query: dict[str, str], name: str) -> str | None:
    """An ISO 8601 date or date-time (UTC unless it has an offset) as the stored form (`iso()`: UTC, microseconds).

    Run documents store `created_at` that way, so the result compares with them as a string."""
    raw = query.get(name)
    if raw is None:
        return None
    from datetime import UTC, datetime

    try:
        value = datetime.fromisoformat(raw)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    except (ValueError, OverflowError) as exc:
        raise BadRequest(
            f"{name} must be an ISO 8601 date or date-time, e.g. 2026-01-31 or 2026-01-31T00:00:00Z", {"field": name}
        ) from exc
