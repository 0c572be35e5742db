"""Flask request -> route -> JSON response. Every error is `{error, message, details}`; never a 500 for bad input."""

from __future__ import annotations

import json
from typing import Any

from shared import logs
from shared.api.routes import ROUTES, ApiRequest, ApiResponse
from shared.errors import BadRequest, ClientError, MethodNotAllowed, NotFound, PayloadTooLarge, TooManyRequests
from shared.errors import ServiceUnavailable as Unavailable
from shared.runtime.context import Context

MAX_BODY_BYTES = 1 << 20
log = logs.get_logger("cloudact.api")


def dispatch(ctx: Context, req: ApiRequest) -> ApiResponse:
    allowed: list[str] = []
    for method, pattern, handler in ROUTES:
        match = pattern.match(req.path)
        if match is None:
            continue
        if method != req.method:
            allowed.append(method)
            continue
        params = match.groupdict()
        with logs.log_context(tenant_id=params.get("tenant_id"), run_id=params.get("run_id")):
            return handler(ctx, req, params)
    if allowed:
        raise MethodNotAllowed(
            f"{req.method} is not allowed here; use {', '.join(sorted(set(allowed)))}",
            {"allowed": sorted(set(allowed))},
        )
    raise NotFound(f"no route for {req.method} {req.path}", {"path": req.path})


def handle(
    ctx: Context, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
) -> ApiResponse:
    try:
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"request body is larger than {MAX_BODY_BYTES} bytes", {"limit": MAX_BODY_BYTES})
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise BadRequest(f"request body is not valid JSON: {exc}", {"field": "<body>"}) from exc
        lowered = {k.lower(): v for k, v in headers.items()}
        return dispatch(ctx, ApiRequest(method.upper(), path.rstrip("/") or "/", query, lowered, parsed))
    except ClientError as exc:
        extra: dict[str, str] = {}
        if isinstance(exc, TooManyRequests | Unavailable):
            extra["Retry-After"] = str(exc.retry_after_seconds)
        return ApiResponse(exc.status, exc.to_body(), extra)
    except Exception:
        log.exception("unhandled error in api")
        return ApiResponse(500, {"error": "INTERNAL", "message": "internal error; it has been logged", "details": {}})


def handle_flask(ctx: Context, request: Any) -> tuple[str, int, dict[str, str]]:
    """The functions-framework HTTP entry: reads at most MAX_BODY_BYTES + 1 so a huge body cannot exhaust memory."""
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
