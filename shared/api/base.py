"""What every route module shares: the request/response types, the Route table entry and body/query validation.

A Route says everything about an endpoint in one place - method, path template, who may call it (public, a tenant's
API key with a scope, or the platform admin credential), its body model and query parameters - so the dispatcher,
the authorisation checks and the OpenAPI document are all derived from the same table and cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from shared.errors import BadRequest
from shared.runtime.context import Context
from shared.tenancy.apikeys import Principal, Scope

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
    """One query parameter, declared once: the OpenAPI schema and the check its handler applies (`read`) both come
    from this object, so the document and the 400s cannot disagree. A bad value is a 400 naming the parameter."""

    name: str
    description: str = ""

    @property
    def schema(self) -> dict[str, Any]:
        return {"type": "string"}

    def read(self, query: dict[str, str]) -> Any:
        return query.get(self.name)

    def _refuse(self, what: str) -> BadRequest:
        return BadRequest(f"{self.name} must be {what}", {"field": self.name})


@dataclass(frozen=True)
class IntQuery(QueryParam):
    default: int = 0
    low: int = 0
    high: int = 0

    @property
    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.low, "maximum": self.high, "default": self.default}

    def read(self, query: dict[str, str]) -> int:
        raw = query.get(self.name)
        if raw is None:
            return self.default
        if not _INTEGER.fullmatch(raw) or not self.low <= int(raw) <= self.high:
            raise self._refuse(f"an integer in [{self.low}, {self.high}]")
        return int(raw)


@dataclass(frozen=True)
class ChoiceQuery(QueryParam):
    choices: tuple[str, ...] = ()

    @property
    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.choices)}

    def read(self, query: dict[str, str]) -> str | None:
        raw = query.get(self.name)
        if raw is not None and raw not in self.choices:
            raise self._refuse(f"one of {', '.join(self.choices)}")
        return raw


@dataclass(frozen=True)
class PatternQuery(QueryParam):
    pattern: str = ".*"
    meaning: str = "valid"
    """How the refusal describes a good value: `{name} must be {meaning}`."""

    @property
    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": self.pattern}

    def read(self, query: dict[str, str]) -> str | None:
        raw = query.get(self.name)
        if raw is not None and not re.fullmatch(self.pattern, raw):
            raise self._refuse(self.meaning)
        return raw


@dataclass(frozen=True)
class TimestampQuery(QueryParam):
    """An ISO 8601 date or date-time (UTC unless it has an offset), read as the stored form (`iso()`: UTC,
    microseconds): run documents store `created_at` that way, so the value compares with them as a string."""

    @property
    def schema(self) -> dict[str, Any]:
        return {"type": "string", "anyOf": [{"format": "date"}, {"format": "date-time"}]}

    def read(self, query: dict[str, str]) -> str | None:
        raw = query.get(self.name)
        if raw is None:
            return None
        try:
            value = datetime.fromisoformat(raw)
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            return value.astimezone(UTC).isoformat(timespec="microseconds")
        except (ValueError, OverflowError) as exc:
            raise self._refuse("an ISO 8601 date or date-time, e.g. 2026-01-31 or 2026-01-31T00:00:00Z") from exc


_INTEGER = re.compile(r"-?[0-9]{1,12}")


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    """OpenAPI path template, e.g. `/api/v1/tenants/{tenant_id}/metadata/executions/{run_id}`."""
    handler: Handler
    access: Access
    summary: str
    scope: Scope | None = None
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
