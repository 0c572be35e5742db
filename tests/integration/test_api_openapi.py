"""The served OpenAPI 3.1 document matches the implementation, and schemathesis (property-based requests generated
from that document, sent in-process to the real functions-framework WSGI app) finds no 5xx and no undocumented
status, content type or response shape."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import functions_framework
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from shared.api.routes import ROUTES

REPO = Path(__file__).resolve().parents[2]
EXAMPLES_PER_OPERATION = 12
SAMPLE = {"tenant_id": "testco", "run_id": "run_0000000000000000000000", "key_id": "0123456789abcdef",
          "pipeline_id": "fan_join", "name": "slack_webhook", "dead_letter_id": "1", "stage_id": "a"}  # fmt: skip


def test_the_document_lists_exactly_the_routes_with_their_security(runtime: Any) -> None:
    doc = runtime.call_api("GET", "/api/v1/openapi.json").body
    assert doc["openapi"] == "3.1.0"
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == {(r.method, r.path) for r in ROUTES}
    for route in ROUTES:
        op = doc["paths"][route.path][route.method.lower()]
        expected = {"public": [], "tenant": [{"ApiKey": []}], "admin": [{"AdminToken": []}]}[route.access]
        assert op["security"] == expected, route.path
        assert str(route.success) in op["responses"]
        if route.access == "tenant":
            assert op["x-required-scope"] == route.scope and {"401", "403", "429"} <= set(op["responses"])
        if route.body is not None:
            schema = doc["components"]["schemas"][route.body.__name__]
            assert schema["additionalProperties"] is False  # the handlers refuse unknown fields too


def test_every_documented_operation_is_served(runtime: Any) -> None:
    """No documented path answers 'no route': each one reaches its route (401/403/4xx from the route itself)."""
    doc = runtime.call_api("GET", "/api/v1/openapi.json").body
    for path, ops in doc["paths"].items():
        for method in ops:
            response = runtime.call_api(method.upper(), path.format(**SAMPLE), {})
            assert "no route" not in response.body.get("message", ""), (method, path)


def test_unknown_body_fields_are_400_like_the_document_says(runtime: Any) -> None:
    headers = {"X-API-Key": runtime.api_keys["testco"], "X-Admin-Token": runtime.admin_token}
    for route in (r for r in ROUTES if r.body is not None):
        response = runtime.call_api(route.method, route.path.format(**SAMPLE), {"unexpected_field": 1}, headers)
        assert response.status == 400, (route.path, response.body)
        fields = [e["field"] for e in response.body["details"].get("errors", [])]
        assert "unexpected_field" in fields, (route.path, response.body)


def test_schemathesis_finds_no_server_errors(runtime: Any) -> None:
    admin = runtime.call_api(
        "PATCH",
        "/api/v1/admin/tenants/testco",
        {"limits": {"requests_per_minute": 1_000_000}},
        {"X-Admin-Token": runtime.admin_token},
    )
    assert admin.status == 200
    app = functions_framework.create_app(target="api", source=str(REPO / "main.py"), signature_type="http")
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    credentials = {"X-API-Key": runtime.api_keys["testco"], "X-Admin-Token": runtime.admin_token}
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= len(ROUTES) - 1  # schemathesis skips the schema document itself
    calls: list[int] = []
    for operation in operations:
        has_tenant = "{tenant_id}" in operation.path
        strategies = [operation.as_strategy()]
        if has_tenant:  # also go past authorisation: the real tenant with its own key
            strategies.append(operation.as_strategy(path_parameters={"tenant_id": "testco"}))
        for strategy in strategies:

            @given(case=strategy)
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def exercise(case: Any) -> None:
                response = case.call(headers=credentials)
                calls.append(response.status_code)
                case.validate_response(response, checks=checks)

            exercise()
    elapsed = time.monotonic() - started
    assert len(calls) >= 2 * len(ROUTES) and elapsed < 90
    assert any(200 <= s < 300 for s in calls) and not any(s >= 500 for s in calls)
    by_status = sorted(Counter(calls).items())
    print(f"schemathesis: {len(calls)} requests over {len(operations)} operations in {elapsed:.1f}s: {by_status}")
