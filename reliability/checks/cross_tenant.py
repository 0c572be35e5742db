"""Cross-tenant corpus: tenant A's API key against every tenant route of tenant B (taken from the route table, so a
new route is covered the day it is added), B's ids under A's own path, and requests without a valid key.

Nothing may be executed or changed for B: every answer a 4xx (403/404 for a foreign tenant, 401 without a key), and
B's runs, keys and secrets exactly as before.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from bench.tenants import has_tenancy
from reliability.drill import TENANT, embedded_drill
from reliability.harness import Figure, NotMeasured, Options, figure, ratio

NAME = "cross-tenant corpus"
OTHER = "otherco"
SECRET_NAME = "warehouse_password"
BODIES: dict[str, Any] = {
    "pipelines/execute": {"pipeline_id": "seq3"},
    "backfill": {"start_date": "2026-01-01", "end_date": "2026-01-02"},
    "api-keys": {"name": "stolen"},
    "rotate": {"grace_seconds": 0},
    "secrets/{name}": {"value": "overwritten-by-another-tenant"},
}


def _body(path: str, method: str) -> Any:
    if method in ("GET", "DELETE"):
        return None
    return next((b for suffix, b in BODIES.items() if path.endswith(suffix)), {})


def _fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "x"), path)


def run(options: Options) -> list[Figure]:
    if not has_tenancy():
        raise NotMeasured("needs API keys (tenancy, issue 4)")
    from shared.api.routes import ROUTES
    from shared.secrets.store import get_secret
    from shared.tenancy.apikeys import list_keys

    with embedded_drill() as drill:
        probe = drill.execute("seq3", headers={})
        if probe.status != 401:
            raise NotMeasured(f"needs API-key authentication on tenant routes (execute without a key: {probe.status})")
        other = drill.add_tenant(OTHER)
        call = drill.runtime.call_api
        base_b = f"/api/v1/tenants/{OTHER}"
        run_b = call("POST", f"{base_b}/pipelines/execute", {"pipeline_id": "seq3"}, other).body["run_id"]
        call("PUT", f"{base_b}/secrets/{SECRET_NAME}", {"value": "b-secret-value-0123456789"}, other)
        drill.runtime.wait_idle(30)
        ctx = drill.runtime.context
        keys_before = sorted((k["key_id"], k.get("revoked_at")) for k in list_keys(ctx, OTHER))
        b_ids = {"tenant_id": OTHER, "run_id": run_b, "key_id": keys_before[0][0], "name": SECRET_NAME}
        b_ids["pipeline_id"] = "seq3"
        answers: list[tuple[str, int]] = []
        tenant_routes = [r for r in ROUTES if r.access == "tenant"]
        for route in tenant_routes:
            # A's key on B's resources; and B's run / key ids under A's own path.
            variants = [b_ids]
            if "{run_id}" in route.path or "{key_id}" in route.path:  # B's own ids under A's path
                variants.append({**b_ids, "tenant_id": TENANT})
            for values in variants:
                path = _fill(route.path, values)
                response = call(route.method, path, _body(path, route.method), drill.headers)
                answers.append((f"{route.method} {path}", response.status))
        for route in tenant_routes:  # no key, a malformed key, and B's path with A's key id but a made-up secret
            path = _fill(route.path, b_ids)
            for headers in ({}, {"X-API-Key": "cdp_not_a_key"}, {"X-API-Key": f"cdp_{b_ids['key_id']}_{'x' * 43}"}):
                response = call(route.method, path, _body(path, route.method), headers)
                answers.append((f"{route.method} {path} [bad key]", response.status))
        drill.runtime.wait_idle(30)
        b_runs = [doc["run_id"] for _, doc in drill.state.list("runs") if doc.get("tenant_id") == OTHER]
        keys_after = sorted((k["key_id"], k.get("revoked_at")) for k in list_keys(ctx, OTHER))
        secret_after = get_secret(ctx, OTHER, SECRET_NAME)
    statuses = Counter(status for _, status in answers)
    breaches = [what for what, status in answers if status < 400]
    server_errors = [what for what, status in answers if status >= 500]
    refused = len(answers) - len(breaches) - len(server_errors)
    return [
        figure(
            NAME,
            "foreign or keyless requests refused with a 4xx",
            ratio(refused, len(answers)),
            refused == len(answers),
            "100 %",
            f"{len(tenant_routes)} tenant routes; " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())),
        ),
        figure(
            NAME, "requests that succeeded across tenants", len(breaches), not breaches, "0", "; ".join(breaches[:3])
        ),
        figure(NAME, "5xx answers", len(server_errors), not server_errors, "0", "; ".join(server_errors[:3])),
        figure(NAME, "runs executed for the other tenant", len(b_runs) - 1, b_runs == [run_b], "0"),
        figure(
            NAME,
            "the other tenant's keys and secret unchanged",
            "yes" if keys_after == keys_before and secret_after == b"b-secret-value-0123456789" else "no",
            keys_after == keys_before and secret_after == b"b-secret-value-0123456789",
            "yes",
        ),
    ]
