"""P2: seq10 on the emulator stack — every function its own functions-framework process behind Pub/Sub emulator push
subscriptions, state in the Firestore emulator, warehouse on bqemulator (run metadata only: the stages are no-ops).

Per-hop latency comes from the stage documents: stage N-1 `ended_at` -> stage N `started_at`, i.e. advance + publish
+ Pub/Sub push + decode + claim + RUNNING transition. End to end is from just before the execute request to the run's
`ended_at` (the polling interval does not enter any figure).
"""

from __future__ import annotations

import itertools
import json
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.harness import Case, CaseResult, Figure, Options, Target, median, percentile, progress
from bench.pipelines import BENCH_TENANT, write_bench_tenant
from bench.servers import emulator_servers, process_env
from bench.tenants import onboard_unthrottled

HOP_TARGET_MS = 150.0
SEQ10_TARGET_S = 3.0
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED")


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def run_once(
    api_url: str, pipeline_id: str, headers: dict[str, str], timeout_s: float = 120.0
) -> tuple[float, dict[str, Any]]:
    from bench.local_stack import http_json

    started = time.time()
    status, body = http_json(
        "POST",
        f"{api_url}/api/v1/tenants/{BENCH_TENANT}/pipelines/execute",
        json.dumps({"pipeline_id": pipeline_id}).encode(),
        headers,
    )
    if status != 202:
        raise RuntimeError(f"execute {pipeline_id}: {status} {body}")
    url = f"{api_url}/api/v1/tenants/{BENCH_TENANT}/metadata/executions/{body['run_id']}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.1)
        status, run = http_json("GET", url, headers=headers)
        if status == 200 and run["status"] in TERMINAL:
            if run["status"] != "SUCCEEDED":
                raise RuntimeError(f"{pipeline_id} ended {run['status']}: {run.get('error')}")
            return started, dict(run)
    raise RuntimeError(f"{pipeline_id} on the emulator stack did not finish in {timeout_s:.0f} s")


def hops_ms(run: dict[str, Any]) -> list[float]:
    stages = run["stages"]  # in pipeline order, which is the chain order for seq10
    return [(_ts(b["started_at"]) - _ts(a["ended_at"])) * 1000 for a, b in itertools.pairwise(stages)]


def _onboard(project: str, env: dict[str, str]) -> dict[str, str]:
    """Onboard the bench tenant in the emulators' state, from this process, with the functions' settings."""
    import os

    from shared.runtime.context import Context
    from shared.runtime.settings import Settings

    ctx = Context(Settings.from_env({**os.environ, **env, "CLOUDACT_PROJECT": project}))
    try:
        return onboard_unthrottled(ctx, BENCH_TENANT)
    finally:
        ctx.close()


def measure(options: Options) -> CaseResult:
    from bench.local_stack import start_stack

    runs, warmup = (2, 1) if options.quick else (8, 2)
    with emulator_servers("P2") as servers, tempfile.TemporaryDirectory(prefix="cloudact-bench-p2-") as tmp:
        config_dir = write_bench_tenant(Path(tmp) / "tenant_configs")
        project = f"bench-{uuid.uuid4().hex[:8]}"
        env = {
            "CLOUDACT_RUNTIME": "emulators",
            "CLOUDACT_CONFIG_DIR": str(config_dir),
            "CLOUDACT_HOME": str(Path(tmp) / "home"),
            "CLOUDACT_LOG_LEVEL": "INFO",
            **servers.env,
        }
        with process_env(servers.env):
            progress(f"P2: starting functions-framework processes (project {project}, warehouse {servers.warehouse})")
            headers = _onboard(project, env)
            stack = start_stack(project, env, Path(tmp) / "function-logs")
            try:
                hops: list[float] = []
                end_to_end: list[float] = []
                first_stage: list[float] = []
                for i in range(warmup + runs):
                    started, run = run_once(stack.api_url, "seq10", headers)
                    if i < warmup:
                        continue
                    hops += hops_ms(run)
                    end_to_end.append(_ts(run["ended_at"]) - started)
                    first_stage.append((_ts(run["stages"][0]["started_at"]) - started) * 1000)
                progress(f"P2: {runs} measured runs done")
            finally:
                stack.stop()
    figures = [
        Figure("per-hop latency p50", median(hops), "ms", Target("<=", HOP_TARGET_MS), samples=len(hops)),
        Figure("per-hop latency p95", percentile(hops, 95), "ms", samples=len(hops)),
        Figure("execute request -> first stage running, p50", median(first_stage), "ms", samples=len(first_stage)),
        Figure("seq10 end to end, median", median(end_to_end), "s", Target("<=", SEQ10_TARGET_S), samples=runs),
        Figure("seq10 end to end, p95", percentile(end_to_end, 95), "s", samples=runs),
    ]
    return CaseResult(
        "P2",
        CASE.title,
        "measured",
        figures,
        details={
            "warehouse": servers.warehouse,
            "notes": servers.notes,
            "samples": {"hops_ms": hops, "end_to_end_s": end_to_end, "first_stage_ms": first_stage},
        },
    )


CASE = Case("P2", "seq10 on the emulator stack (Pub/Sub push, Firestore, bqemulator)", measure)
