"""Flask request -> route -> JSON response. Every error is `{error, message, details}`; never a 500 for bad input.

Order of checks for a request: size (413) -> JSON (400) -> route (404/405) -> global rate (429) -> credential (401)
-> tenant of the key vs the path, scope, tenant status (403) -> tenant rate (429, with X-RateLimit-*) -> handler.
"""

from __future__ import annotations

import json
from typing import Any

from shared import logs
from shared.api.openapi import openapi_document
from shared.api.reference import DOCS_PATH, docs_response
from shared.api.routes import ROUTES, ApiRequest, ApiResponse, Route
from shared.errors import (
    BadRequest,
    ClientError,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    TransientError,
)
from shared.plans import effective_plan
from shared.runtime.context import Context
from shared.tenancy.apikeys import authenticate
from shared.tenancy.credentials import require_admin
from shared.tenancy.ratelimit import RateLimited, check_tenant_rate, global_limiter
from shared.tenancy.tenants import get_tenant_cached, require_active
from shared.ui.serve import is_ui_path, ui_response

MAX_BODY_BYTES = 1 << 20
log = logs.get_logger(__name__)


def match_route(method: str, path: str) -> tuple[Route, dict[str, str]]:
    allowed: list[str] = []
    for route in ROUTES:
        match = route.pattern.match(path)
        if match is None:
            continue
        if route.method != method:
            allowed.append(route.method)
            continue
        return route, match.groupdict()
    if allowed:
        raise MethodNotAllowed(
            f"{method} is not allowed here; use {', '.join(sorted(set(allowed)))}",
            {"allowed": sorted(set(allowed))},
        )
    raise NotFound(f"no route for {method} {path}", {"path": path})


def authorize(ctx: Context, route: Route, req: ApiRequest, params: dict[str, str]) -> None:
    """Raise 401/403/429 unless the request's credential may call `route` with these path parameters."""
    if route.access == "admin":
        require_admin(ctx, req.headers.get("x-admin-token"))
        return
    if route.access != "tenant":
        return
    principal = authenticate(ctx, req.headers.get("x-api-key"), req.user_id)
    tenant_id = params["tenant_id"]
    if principal.tenant_id != tenant_id:
        raise Forbidden("this API key belongs to another tenant", {"field": "tenant_id"})
    assert route.scope is not None
    if not principal.allows(route.scope):
        raise Forbidden(f"this API key lacks the {route.scope!r} scope", {"scope": route.scope})
    tenant = get_tenant_cached(ctx, tenant_id)
    require_active(tenant)
    try:
        window = check_tenant_rate(ctx, tenant_id, effective_plan(tenant).requests_per_minute)
    except RateLimited as exc:
        req.response_headers.update(exc.window.headers())
        raise
    req.response_headers.update(window.headers())
    req.principal = principal


def dispatch(ctx: Context, req: ApiRequest) -> ApiResponse:
    route, params = match_route(req.method, req.path)
    global_limiter(ctx).check()
    with logs.log_context(tenant_id=params.get("tenant_id"), run_id=params.get("run_id")):
        authorize(ctx, route, req, params)
        return route.handler(ctx, req, params)


def handle(
    ctx: Context, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
) -> ApiResponse:
    lowered = {k.lower(): v for k, v in headers.items()}
    req = ApiRequest(method.upper(), path.rstrip("/") or "/", query, lowered)
    try:
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"request body is larger than {MAX_BODY_BYTES} bytes", {"limit": MAX_BODY_BYTES})
        if body:
            try:
                req.json_body = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise BadRequest(f"request body is not valid JSON: {exc}", {"field": "<body>"}) from exc
        response = dispatch(ctx, req)
    except ClientError as exc:
        extra: dict[str, str] = {}
        if isinstance(exc, TooManyRequests | ServiceUnavailable):
            extra["Retry-After"] = str(int(exc.retry_after_seconds))
        if isinstance(exc, MethodNotAllowed):
            extra["Allow"] = ", ".join(exc.details.get("allowed", []))
        response = ApiResponse(exc.status, exc.to_body(), extra)
    except TransientError as exc:  # contention or a backend blip: the client may retry, it is not our bug
        retry = max(1, int(exc.retry_after_seconds or 1))
        log.warning("transient failure in api: %s", exc)
        unavailable = {"error": "UNAVAILABLE", "message": f"temporarily unavailable: {exc}", "details": {}}
        response = ApiResponse(503, unavailable, {"Retry-After": str(retry)})
    except Exception:
        log.exception("unhandled error in api")
        response = ApiResponse(
            500, {"error": "INTERNAL", "message": "internal error; it has been logged", "details": {}}
        )
    response.headers = {**req.response_headers, **response.headers}
    return response


def handle_flask(ctx: Context, request: Any) -> tuple[str, int, dict[str, str]]:
    """The functions-framework HTTP entry: reads at most MAX_BODY_BYTES + 1 so a huge body cannot exhaust memory."""
    if is_ui_path(request.path):  # the run-history page's static files (shared/ui), not an API route
        return ui_response(request.method, request.path, request.headers.get("If-None-Match"))
    if request.path.rstrip("/") == DOCS_PATH:  # the API reference as HTML, under the same CSP as the UI
        return docs_response(request.method, openapi_document(ROUTES), request.headers.get("If-None-Match"))
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        response = ApiResponse(
            413,
            PayloadTooLarge(f"request body is larger than {MAX_BODY_BYTES} bytes", {"limit": MAX_BODY_BYTES}).to_body(),
        )
    else:
        body = request.stream.read(MAX_BODY_BYTES + 1)
        response = handle(
            ctx, request.method, request.path, dict(request.args.items()), dict(request.headers.items()), body
        )
    headers = {"Content-Type": "application/json", "Cache-Control": "no-store", **response.headers}
    return json.dumps(response.body, default=str), response.status, headers
