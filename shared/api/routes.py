"""The HTTP API's route table: every endpoint, who may call it and with which scope (see `base.Route`).

Handlers live in `runs_routes` (pipelines and runs) and `admin_routes` (tenants, API keys, secrets); this module puts
them in one table with the public routes (health, the OpenAPI document).
"""

from __future__ import annotations

from shared.api.admin_routes import ADMIN_ROUTES
from shared.api.base import ApiRequest, ApiResponse, Handler, Route
from shared.api.history_routes import HISTORY_ROUTES
from shared.api.openapi import openapi_document
from shared.api.preview_routes import PREVIEW_ROUTES
from shared.api.runs_routes import RUN_ROUTES
from shared.api.signin import SessionBody, exchange_signin_token
from shared.runtime.context import Context

__all__ = ["ROUTES", "ApiRequest", "ApiResponse", "Handler", "Route"]


def health(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    return ApiResponse(200, {"status": "ok", "runtime": ctx.settings.runtime})


def openapi_json(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    return ApiResponse(200, openapi_document(ROUTES))


ROUTES: tuple[Route, ...] = (
    Route("GET", "/api/v1/health", health, "public", "Liveness", tag="meta"),
    Route("GET", "/api/v1/openapi.json", openapi_json, "public", "This API's OpenAPI 3.1 document", tag="meta"),
    Route(
        "POST",
        "/api/v1/ui/session",
        exchange_signin_token,
        "public",
        "Local runtime only: exchange `cloudact ui`'s one-time sign-in token for a read-only key (404 elsewhere)",
        body=SessionBody,
        errors=(401, 404),
        tag="meta",
    ),
    *RUN_ROUTES,
    *HISTORY_ROUTES,
    *PREVIEW_ROUTES,
    *ADMIN_ROUTES,
)
