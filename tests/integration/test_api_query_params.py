"""Query parameters are declared once (shared/api/base.py QueryParam) and their handlers read them through that
declaration: table-driven over every route, a bad value of each declared parameter is a 400 naming it, and a good
one is accepted. A handler that checked a parameter its own way, or ignored one it declares, fails here."""

from __future__ import annotations

from typing import Any

import pytest

from shared.api.base import ChoiceQuery, IntQuery, PatternQuery, QueryParam, TimestampQuery
from shared.api.openapi import openapi_document
from shared.api.routes import ROUTES, Route

SAMPLE = {"tenant_id": "testco", "run_id": "run_0000000000000000000000", "stage_id": "a"}
DECLARED = [(route, param) for route in ROUTES for param in route.query]


def _bad_value(param: QueryParam) -> str:
    if isinstance(param, IntQuery):
        return str(param.high + 1)
    if isinstance(param, ChoiceQuery):
        return "none_of_these"
    if isinstance(param, PatternQuery):
        return "not/valid!"
    if isinstance(param, TimestampQuery):
        return "yesterday"
    raise AssertionError(f"{param.name}: a query parameter of no known kind accepts anything")


def _good_value(param: QueryParam) -> str:
    if isinstance(param, IntQuery):
        return str(param.low)
    if isinstance(param, ChoiceQuery):
        return param.choices[0]
    if isinstance(param, TimestampQuery):
        return "2026-01-31"
    return {"run_id": SAMPLE["run_id"], "tenant_id": "testco"}.get(param.name, "fan_join")


def _call(runtime: Any, route: Route, query: dict[str, str]) -> Any:
    headers = {"X-Admin-Token": runtime.admin_token} if route.access == "admin" else {}
    if route.access == "tenant":
        headers = {"X-API-Key": runtime.api_keys["testco"]}
    return runtime.call_api(route.method, route.path.format(**SAMPLE), None, headers, query)


def test_the_table_has_query_parameters_of_every_kind() -> None:
    kinds = {type(param) for _, param in DECLARED}
    assert kinds == {IntQuery, ChoiceQuery, PatternQuery, TimestampQuery}
    for route in ROUTES:
        assert len({p.name for p in route.query}) == len(route.query), f"{route.path} declares a parameter twice"


def test_the_openapi_document_shows_each_parameter_as_declared() -> None:
    paths = openapi_document(ROUTES)["paths"]
    for route, param in DECLARED:
        documented = {p["name"]: p for p in paths[route.path][route.method.lower()]["parameters"] if p["in"] == "query"}
        assert documented[param.name]["schema"] == param.schema


@pytest.mark.parametrize(("route", "param"), DECLARED, ids=[f"{r.method} {r.path} {p.name}" for r, p in DECLARED])
def test_a_bad_value_is_a_400_naming_the_parameter(runtime: Any, route: Route, param: QueryParam) -> None:
    refused = _call(runtime, route, {param.name: _bad_value(param)})
    assert refused.status == 400, refused.body
    assert refused.body["details"]["field"] == param.name and param.name in refused.body["message"]
    accepted = _call(runtime, route, {param.name: _good_value(param)})
    assert accepted.status != 400, accepted.body


def test_handlers_read_the_query_only_through_declared_parameters() -> None:
    from tests.conftest import REPO

    handlers = [*(REPO / "shared" / "api").glob("*_routes.py"), *(REPO / "shared" / "ui").glob("*.py")]
    assert len(handlers) >= 6
    direct = [str(p.relative_to(REPO)) for p in handlers if "query.get(" in p.read_text() or "query[" in p.read_text()]
    assert direct == [], "declare a QueryParam on the route and read it with .read(req.query)"
