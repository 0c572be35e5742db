"""Quota race: 200 execute requests released at the same instant against a concurrency limit of 50.

Each admitted run holds its slot for a few seconds (a sleeping no-op), so during the burst nothing is given back:
exactly 50 must be admitted (202), every other request refused with 429 (or 503 + Retry-After when admission is
contended), none with a 5xx, and once the runs end every slot must be released.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.tenants import has_tenancy
from reliability.drill import embedded_drill
from reliability.harness import Figure, NotMeasured, Options, figure, info

NAME = "quota race"
REQUESTS = 200
LIMIT = 50
TENANT = "quotaco"


def run(options: Options) -> list[Figure]:
    if not has_tenancy():
        raise NotMeasured("needs plans and quotas (tenancy, issue 4)")
    from shared.plans import MAX_LIMIT
    from shared.runs.admission import active_runs

    limits = {"concurrent_runs": LIMIT, "runs_per_day": MAX_LIMIT, "runs_per_month": MAX_LIMIT}
    limits["requests_per_minute"] = MAX_LIMIT
    with embedded_drill(workers=LIMIT + 8) as drill:
        headers = drill.add_tenant(TENANT, limits)
        gate = threading.Barrier(REQUESTS)

        def execute(i: int) -> Any:
            gate.wait()
            return drill.execute("slow_hold", tenant=TENANT, headers=headers)

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
            responses = list(pool.map(execute, range(REQUESTS)))
        burst_s = time.monotonic() - started
        statuses = Counter(r.status for r in responses)
        admitted_ids = [str(r.body["run_id"]) for r in responses if r.status == 202]
        runs = drill.wait_terminal(admitted_ids, 120, TENANT, headers)
        stored = sum(1 for _, doc in drill.state.list("runs") if doc.get("tenant_id") == TENANT)
        active = active_runs(drill.state, TENANT)
    admitted = statuses[202]
    refused = statuses[429] + statuses[503]
    server_errors = sum(n for s, n in statuses.items() if s >= 500 and s != 503)
    held_s = 6.0  # slow_hold sleeps 6 s: a burst longer than that lets finished runs give slots back
    return [
        figure(NAME, "admitted", admitted, admitted == LIMIT, str(LIMIT), f"{REQUESTS} concurrent executes"),
        figure(
            NAME,
            "refused with 429 / 503 + Retry-After",
            refused,
            refused == REQUESTS - LIMIT,
            str(REQUESTS - LIMIT),
            f"429: {statuses[429]}, 503: {statuses[503]}",
        ),
        figure(
            NAME,
            "5xx answers (other than 503)",
            server_errors,
            server_errors == 0,
            "0",
            ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())),
        ),
        figure(NAME, "runs recorded", stored, stored == admitted, str(admitted)),
        figure(
            NAME,
            "burst finished while every admitted run still held its slot",
            f"{burst_s:.2f} s",
            burst_s < held_s,
            f"< {held_s:.0f} s",
            "otherwise the drill cannot tell a leak from a release",
        ),
        figure(
            NAME,
            "admitted runs SUCCEEDED",
            sum(r["status"] == "SUCCEEDED" for r in runs.values()),
            all(r["status"] == "SUCCEEDED" for r in runs.values()),
            str(admitted),
        ),
        figure(NAME, "slots still held after every run ended", len(active), not active, "0"),
        info(NAME, "burst wall time", f"{burst_s:.2f} s"),
    ]
