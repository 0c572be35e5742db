"""The OpenAPI 3.1 document, generated from the route table (served at /api/v1/openapi.json).

Generated, not hand-written: paths, methods, security, scopes, query parameters and request bodies all come from the
same `Route` entries the dispatcher uses, and request bodies are the pydantic models the handlers validate with, so
the document cannot describe an API that is not there. tests/integration/test_api_openapi.py checks the mapping and
runs schemathesis against the served document.
"""

from __future__ import annotations

from typing import Any

from shared.api.base import Route

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "message", "details"],
    "properties": {
        "error": {"type": "string", "description": "A stable code, e.g. BAD_REQUEST, UNAUTHORIZED, TOO_MANY_REQUESTS"},
        "message": {"type": "string"},
        "details": {"type": "object", "description": "`field` names the offending input when there is one."},
    },
}
_DESCRIPTIONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    400: "Bad request: `details.field` names the offending input",
    401: "Missing, malformed, unknown, revoked or expired credential",
    403: "The credential may not do this (another tenant, a missing scope, or a suspended tenant)",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict with the current state",
    413: "Request body too large (1 MiB)",
    429: "Rate limit or quota exceeded: see Retry-After and X-RateLimit-*",
    503: "Temporarily unavailable (contention, enqueue failure, or no admin credential configured): see Retry-After",
}
_COMMON = {
    "public": (404, 405, 413, 429),
    "tenant": (400, 401, 403, 404, 405, 413, 429),
    "admin": (400, 401, 404, 405, 413, 429, 503),
}
_PATH_PARAM = {"type": "string", "pattern": "^[A-Za-z0-9_\\-.]{1,100}$"}
_JSON_OBJECT = {"application/json": {"schema": {"type": "object"}}}


def _operation(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{route.handler.__name__}_{route.method.lower()}",
        "summary": route.summary,
        "tags": [route.tag],
    }
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": dict(_PATH_PARAM)} for name in route.params
    ]
    parameters += [
        {"name": q.name, "in": "query", "required": False, "schema": q.schema, "description": q.description}
        for q in route.query
    ]
    if route.access != "public":
        parameters.append(
            {
                "name": "X-User-ID",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 200},
                "description": "The end user behind the call: recorded for audit only, never used to authorise.",
            }
        )
    if parameters:
        op["parameters"] = parameters
    if route.body is not None:
        model = route.body
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        op["requestBody"] = {
            "required": bool(schema.get("required")),
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
        }
    statuses = sorted({route.success, 200, *_COMMON[route.access], *route.errors})
    op["responses"] = {
        str(code): {
            "description": _DESCRIPTIONS.get(code, "See body"),
            "content": _JSON_OBJECT
            if code < 400
            else {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for code in statuses
    }
    if route.access == "tenant":
        op["security"] = [{"ApiKey": []}]
        op["x-required-scope"] = route.scope
        op["description"] = f"Needs an API key of `tenant_id` with the `{route.scope}` scope (or `admin`)."
    elif route.access == "admin":
        op["security"] = [{"AdminToken": []}]
        op["description"] = "Needs the platform admin credential (X-Admin-Token)."
    else:
        op["security"] = []
    return op


def build_openapi(routes: tuple[Route, ...]) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Convergence Data Pipeline API",
            "version": "1.0.0",
            "description": "Multi-tenant pipelines. Every error is JSON `{error, message, details}`.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "ApiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-API-Key",
                    "description": "cdp_<key_id>_<secret>",
                },
                "AdminToken": {"type": "apiKey", "in": "header", "name": "X-Admin-Token"},
            },
        },
    }


_BUILT: dict[int, dict[str, Any]] = {}


def openapi_document(routes: tuple[Route, ...]) -> dict[str, Any]:
    """Built once per route table (the table is a module constant)."""
    doc = _BUILT.get(id(routes))
    if doc is None:
        doc = _BUILT[id(routes)] = build_openapi(routes)
    return doc
