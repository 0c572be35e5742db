"""Duplicate delivery: the in-process bus delivers every message twice (`duplicate_deliveries=2`) and every execute
request is sent twice with the same idempotency key, across N concurrent runs that write rows and fan out / join.

A run must be recorded once, each stage executed once, each tag's rows written once, each run's history written once.
"""

from __future__ import annotations

from collections import Counter

from reliability.drill import TENANT, embedded_drill
from reliability.harness import Figure, Options, figure, info, ratio

NAME = "duplicate delivery"
ROWS_PER_RUN = 25
STAGES = 4


def run(options: Options) -> list[Figure]:
    runs_wanted = 5 if options.quick else 20
    with embedded_drill(duplicate_deliveries=2) as drill:
        # One run alone first: it creates the append table (concurrent first appends would race on CREATE).
        seed = drill.start("tagged_rows", {"tag": "seed", "n": ROWS_PER_RUN}, key="dup-seed")
        drill.wait_terminal([seed], 60)
        first, repeats = [], []
        for i in range(runs_wanted):
            params = {"tag": f"t{i:03d}", "n": ROWS_PER_RUN}
            first.append(drill.execute("tagged_rows", params, key=f"dup-{i:03d}"))
            repeats.append(drill.execute("tagged_rows", params, key=f"dup-{i:03d}"))
        run_ids = [str(r.body["run_id"]) for r in first]
        runs = drill.wait_terminal([seed, *run_ids], 180)
        stored_runs = [doc for _, doc in drill.state.list("runs") if doc.get("tenant_id") == TENANT]
        rows_by_tag = Counter(
            str(v) for v in drill.warehouse.query("SELECT tag FROM relyco_drill.tagged_rows").column("tag").to_pylist()
        )
        history = Counter(
            str(v)
            for v in drill.warehouse.query("SELECT run_id FROM relyco_metadata.pipeline_executions")
            .column("run_id")
            .to_pylist()
        )
        steps = Counter(
            str(v)
            for v in drill.warehouse.query("SELECT run_id FROM relyco_metadata.step_executions")
            .column("run_id")
            .to_pylist()
        )
        stats = drill.bus.stats
        delivered_per_message = stats.delivered / max(1, stats.published)
    expected_runs = runs_wanted + 1
    same_run = sum(
        a.status == 202 and b.status == 200 and a.body["run_id"] == b.body["run_id"]
        for a, b in zip(first, repeats, strict=True)
    )
    multi_attempt = [
        (r["run_id"], s["stage_id"]) for r in runs.values() for s in r["stages"] if len(s.get("attempts") or []) != 1
    ]
    tags = ["seed", *(f"t{i:03d}" for i in range(runs_wanted))]
    extra_rows = sum(max(0, rows_by_tag[t] - ROWS_PER_RUN) for t in tags)
    missing_rows = sum(max(0, ROWS_PER_RUN - rows_by_tag[t]) for t in tags)
    extra_history = sum(max(0, history[r] - 1) for r in runs) + sum(max(0, steps[r] - STAGES) for r in runs)
    succeeded = sum(r["status"] == "SUCCEEDED" for r in runs.values())
    return [
        figure(
            NAME,
            "every message delivered at least twice",
            f"{delivered_per_message:.2f} deliveries/message",
            delivered_per_message >= 2.0,
            ">= 2",
            "otherwise this drill proves nothing",
        ),
        figure(NAME, "runs SUCCEEDED", ratio(succeeded, expected_runs), succeeded == expected_runs, "100 %"),
        figure(
            NAME,
            "duplicate runs",
            len(stored_runs) - expected_runs,
            len(stored_runs) == expected_runs,
            "0",
            f"{expected_runs} runs asked for, each execute sent twice with its idempotency key",
        ),
        figure(
            NAME,
            "repeated execute answered 200 with the same run",
            ratio(same_run, runs_wanted),
            same_run == runs_wanted,
            "100 %",
        ),
        figure(
            NAME,
            "stages executed more than once",
            len(multi_attempt),
            not multi_attempt,
            "0",
            f"{expected_runs * STAGES} stages",
        ),
        figure(NAME, "duplicate rows", extra_rows, extra_rows == 0, "0", f"{ROWS_PER_RUN} rows per run, append mode"),
        figure(NAME, "missing rows", missing_rows, missing_rows == 0, "0"),
        figure(
            NAME,
            "duplicate run-history rows",
            extra_history,
            extra_history == 0,
            "0",
            "pipeline_executions + step_executions",
        ),
        info(
            NAME,
            "bus deliveries / publishes",
            f"{stats.delivered} / {stats.published}",
            f"nacked {stats.nacked}, dead-lettered {stats.dead_lettered}",
        ),
    ]
