"""API fuzzing: schemathesis generates requests from the served OpenAPI document (/api/v1/openapi.json) and sends them
in-process to the real functions-framework WSGI app of the `api` entry point (root main.py), on a drill runtime.

Every operation is fuzzed twice: once with generated path parameters (mostly refused at authentication or routing),
and, for tenant routes, once with the drill's real onboarded tenant and its own API key (plus the admin token), so the
handlers behind authorisation see generated bodies and queries too. The figure is the number of 5xx answers (0
expected); answers that do not conform to the document (undocumented status, content type or shape) are a second
figure. Examples per operation are bounded so the check stays well under a minute on two cores.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.tenants import has_tenancy
from reliability.drill import TENANT, embedded_drill
from reliability.harness import Figure, NotMeasured, Options, figure, info

NAME = "API fuzzing (schemathesis)"
REPO = Path(__file__).resolve().parents[2]
EXAMPLES_PER_OPERATION = 25
QUICK_EXAMPLES_PER_OPERATION = 5


def run(options: Options) -> list[Figure]:
    if not has_tenancy():
        raise NotMeasured("needs API keys and the OpenAPI document (tenancy/API, issue 4)")
    try:
        import functions_framework
        import schemathesis
        from hypothesis import HealthCheck, given, settings
        from schemathesis.checks import (
            content_type_conformance,
            not_a_server_error,
            response_schema_conformance,
            status_code_conformance,
        )
    except ImportError as exc:
        raise NotMeasured(f"schemathesis not installed ({exc}); pip install -r requirements-dev.txt") from exc

    examples = QUICK_EXAMPLES_PER_OPERATION if options.quick else EXAMPLES_PER_OPERATION
    conformance = [content_type_conformance, response_schema_conformance, status_code_conformance]
    statuses: list[int] = []
    server_errors: list[str] = []
    nonconforming: list[str] = []
    with embedded_drill() as drill:
        credentials = {**drill.headers, "X-Admin-Token": drill.runtime.admin_token}
        app = functions_framework.create_app(target="api", source=str(REPO / "main.py"), signature_type="http")
        schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        started = time.monotonic()
        for operation in operations:
            strategies = [operation.as_strategy()]
            if "{tenant_id}" in operation.path:  # past authorisation: the real tenant with its own key
                strategies.append(operation.as_strategy(path_parameters={"tenant_id": TENANT}))
            for strategy in strategies:

                @given(case=strategy)
                @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
                def exercise(case: Any) -> None:
                    response = case.call(headers=credentials)
                    statuses.append(response.status_code)
                    label = f"{case.method} {case.formatted_path} -> {response.status_code}"
                    try:
                        case.validate_response(response, checks=[not_a_server_error])
                    except Exception:  # counted, not raised: hypothesis would stop at the first one
                        server_errors.append(label)
                    try:
                        case.validate_response(response, checks=conformance)
                    except Exception as exc:
                        nonconforming.append(f"{label}: {str(exc).splitlines()[0][:120]}")

                exercise()
        elapsed = time.monotonic() - started
    five_xx = sum(1 for s in statuses if s >= 500)
    by_status = ", ".join(f"{s}: {n}" for s, n in sorted(Counter(statuses).items()))
    authorised = sum(1 for s in statuses if 200 <= s < 300)
    return [
        figure(
            NAME,
            "5xx answers",
            five_xx,
            five_xx == 0 and not server_errors,
            "0",
            f"over {len(statuses)} requests, {len(operations)} operations, {examples} examples each"
            + (f"; first: {server_errors[0]}" if server_errors else ""),
        ),
        figure(
            NAME,
            "answers not conforming to the document",
            len(nonconforming),
            not nonconforming,
            "0",
            nonconforming[0] if nonconforming else "status code, content type and response schema checked",
        ),
        figure(NAME, "2xx answers (handlers reached past authorisation)", authorised, authorised > 0, "> 0"),
        info(NAME, "answers by status", by_status, f"{elapsed:.1f} s"),
    ]
