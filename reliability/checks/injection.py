"""SQL-injection corpus against the API and a warehouse step, on the embedded runtime.

Payloads go where a caller controls text: the tenant and pipeline ids in the path and body, the run id and the list
filters, and run parameters bound into a `bigquery.query` step. Ids must be refused with a 4xx (never a 5xx, never a
run); a parameter must travel as a value: stored verbatim, and the canary table next to it untouched.
"""

from __future__ import annotations

import urllib.parse

from reliability.drill import TENANT, embedded_drill
from reliability.harness import Figure, Options, figure, ratio

NAME = "SQL injection"
CANARY = "relyco_drill.canary"
PAYLOADS = (
    "x'; DROP TABLE relyco_drill.canary; --",
    "1 OR 1=1",
    "relyco' UNION SELECT * FROM relyco_metadata.pipeline_executions --",
    '"); DELETE FROM relyco_drill.canary; --',
    "`relyco_drill`.`canary`",
    "../../../etc/passwd",
    "tagged_rows; DROP SCHEMA relyco_drill CASCADE",
    "@tag",
    "{tenant_id}",
    "\\' OR ''='",
)


def run(options: Options) -> list[Figure]:
    import pyarrow as pa

    refused = server_errors = 0
    asked = 0
    leaks: list[str] = []
    with embedded_drill() as drill:
        wh = drill.warehouse
        wh.create_dataset("relyco_drill")
        wh.write_table(CANARY, pa.table({"id": [1, 2, 3]}), "truncate")
        base = f"/api/v1/tenants/{TENANT}"
        for payload in PAYLOADS:
            quoted = urllib.parse.quote(payload, safe="")
            attempts = [
                drill.execute(payload),  # pipeline_id
                drill.execute("tagged_rows", {"tag": "ok"}, tenant=quoted),  # tenant id in the path
                drill.runtime.call_api("GET", f"{base}/metadata/executions/{quoted}", headers=drill.headers),
                drill.execute("tagged_rows", {payload: "x", "tag": "ok"}),  # a parameter *name*
            ]
            for response in attempts:
                asked += 1
                refused += 400 <= response.status < 500
                server_errors += response.status >= 500
            listing = drill.runtime.call_api(
                "GET",
                f"{base}/metadata/executions",
                headers=drill.headers,
                query={"status": payload, "pipeline_id": "x"},
            )
            server_errors += listing.status >= 500
            if listing.status == 200 and (listing.body.get("executions") or listing.body.get("runs")):
                leaks.append(payload)
        drill.runtime.wait_idle(30)
        runs_before = sum(1 for _, doc in drill.state.list("runs") if doc.get("tenant_id") == TENANT)
        # Payloads as parameter *values* bound into SQL: they must land as data. One run alone first creates the
        # append table (concurrent first appends race on creating it; that is not what this drill measures).
        drill.wait_terminal([drill.start("tagged_rows", {"tag": "seed", "n": 1}, key="inj-seed")], 60)
        run_ids = [drill.start("tagged_rows", {"tag": p, "n": 1}, key=f"inj-{i}") for i, p in enumerate(PAYLOADS)]
        runs = drill.wait_terminal(run_ids, 120)
        stored = wh.query("SELECT tag FROM relyco_drill.tagged_rows").column("tag").to_pylist()
        canary = wh.query(f"SELECT COUNT(*) AS n FROM {CANARY}").column("n")[0].as_py()
    verbatim = sum(1 for p in PAYLOADS if stored.count(p) == 1)
    succeeded = sum(r["status"] == "SUCCEEDED" for r in runs.values())
    # A parameter name the pipeline does not declare is refused before any SQL runs (4xx or the run FAILED).
    return [
        figure(
            NAME,
            "hostile ids and parameter names refused with a 4xx",
            ratio(refused, asked),
            refused == asked,
            "100 %",
            f"{len(PAYLOADS)} payloads x (pipeline id, tenant id, run id, parameter name)",
        ),
        figure(NAME, "5xx answers", server_errors, server_errors == 0, "0"),
        figure(NAME, "runs created by hostile ids", runs_before, runs_before == 0, "0"),
        figure(NAME, "list filters returning another query's rows", len(leaks), not leaks, "0"),
        figure(
            NAME,
            "payloads bound as values: runs SUCCEEDED",
            ratio(succeeded, len(PAYLOADS)),
            succeeded == len(PAYLOADS),
            "100 %",
        ),
        figure(
            NAME, "payloads stored verbatim as data", ratio(verbatim, len(PAYLOADS)), verbatim == len(PAYLOADS), "100 %"
        ),
        figure(NAME, "injected statements executed (canary rows lost)", 3 - int(canary), int(canary) == 3, "0"),
    ]
