"""P4: execute-request admission — API key check + quota reservation + run record + publish of run.requested —
latency p50/p99 and requests/s.

Three setups, same requests (POST .../pipelines/execute, spread over 20 tenants so no tenant's admission document is
a hot spot; nothing consumes run.requested, so only admission is measured):
- in process: `shared.api.http.handle` over SQLite state and an in-process bus, one caller;
- one `api` functions-framework process with SQLite state publishing to the Pub/Sub emulator (the target's "one
  functions-framework process, embedded state"): latency with one client, requests/s with 8 client threads on
  keep-alive connections;
- the same process with the Firestore emulator as state.
The load generator shares the 2 cores with the server: requests/s are a lower bound.
"""

from __future__ import annotations

import http.client
import json
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.functions import spawn_function, stop_function
from bench.harness import Case, CaseResult, Figure, Options, Skip, Target, median, percentile, progress
from bench.pipelines import write_bench_tenant
from bench.servers import emulator_servers, process_env
from bench.tenants import has_tenancy, onboard_unthrottled

P50_TARGET_MS = 15.0
RPS_TARGET = 200.0
TENANTS = [f"admit_{i:02d}" for i in range(20)]
CLIENTS = 8


def _body(i: int) -> bytes:
    return json.dumps({"pipeline_id": "seq10", "idempotency_key": f"p4-{i}-{uuid.uuid4().hex[:8]}"}).encode()


def in_process(config_dir: Path, home: Path, requests: int) -> tuple[list[float], float]:
    """Latencies (ms) of `handle()` calls one after another, and requests/s."""
    from shared.adapters.inprocess_bus import InProcessBus
    from shared.api.http import handle
    from shared.runtime.context import Context, set_context
    from shared.runtime.settings import Settings

    ctx = Context(Settings(runtime="embedded", home=home, config_dir=config_dir), _bus=InProcessBus(workers=1))
    previous = set_context(ctx)
    try:
        headers = {t: onboard_unthrottled(ctx, t) for t in TENANTS}
        latencies: list[float] = []
        started = time.perf_counter()
        for i in range(requests):
            tenant = TENANTS[i % len(TENANTS)]
            t0 = time.perf_counter()
            response = handle(ctx, "POST", f"/api/v1/tenants/{tenant}/pipelines/execute", {}, headers[tenant], _body(i))
            latencies.append((time.perf_counter() - t0) * 1000)
            if response.status != 202:
                raise RuntimeError(f"in-process execute: {response.status} {response.body}")
        return latencies, requests / (time.perf_counter() - started)
    finally:
        ctx.close()
        set_context(previous)


def http_load(
    port: int, headers: dict[str, dict[str, str]], requests: int, clients: int
) -> tuple[list[float], float, int]:
    """(latencies in ms, requests/s, non-202 answers) with `clients` threads on keep-alive connections."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        bad = 0
        for i in counter:  # shared iterator: next() on a range iterator is atomic under the GIL
            tenant = TENANTS[i % len(TENANTS)]
            t0 = time.perf_counter()
            connection.request(
                "POST",
                f"/api/v1/tenants/{tenant}/pipelines/execute",
                _body(i),
                {"Content-Type": "application/json", **headers[tenant]},
            )
            response = connection.getresponse()
            response.read()
            mine.append((time.perf_counter() - t0) * 1000)
            bad += response.status != 202
        connection.close()
        with lock:
            latencies.extend(mine)
            failures[0] += bad

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, requests / (time.perf_counter() - started), failures[0]


def one_api_process(
    tmp: Path, config_dir: Path, servers_env: dict[str, str], state: str, requests: int, warmup: int
) -> tuple[list[float], list[float], float]:
    """(latencies of one client alone, latencies under CLIENTS clients, requests/s under CLIENTS clients)."""
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    from shared.contracts import topics
    from shared.runtime.context import Context
    from shared.runtime.settings import Settings

    project = f"bench-p4-{uuid.uuid4().hex[:6]}"
    home = tmp / f"home-{state}"
    env = {
        **servers_env,
        "CLOUDACT_RUNTIME": "emulators",
        "CLOUDACT_STATE": state,
        "CLOUDACT_WAREHOUSE": "duckdb",
        "CLOUDACT_PROJECT": project,
        "CLOUDACT_CONFIG_DIR": str(config_dir),
        "CLOUDACT_HOME": str(home),
        "CLOUDACT_LOG_LEVEL": "WARNING",
    }
    publisher = pubsub_v1.PublisherClient()
    publisher.create_topic(name=publisher.topic_path(project, topics.RUN_REQUESTS))  # no subscription: dropped
    ctx = Context(Settings.from_env({**os.environ, **env}))
    try:
        headers = {t: onboard_unthrottled(ctx, t) for t in TENANTS}
    finally:
        ctx.close()  # the api process opens the same SQLite file (and never the warehouse)
    process, port = spawn_function("api", env, tmp / f"api-{state}.log")
    try:
        http_load(port, headers, warmup, CLIENTS)
        alone, _, bad_alone = http_load(port, headers, max(100, requests // 4), 1)
        loaded, rps, bad_loaded = http_load(port, headers, requests, CLIENTS)
    finally:
        stop_function(process)
    if bad_alone or bad_loaded:
        raise RuntimeError(f"{state}: {bad_alone + bad_loaded} executes were not admitted (202); see the api log")
    return alone, loaded, rps


def _figures(label: str, latencies: list[float], rps: float, target_rps: bool, note: str = "") -> list[Figure]:
    return [
        Figure(f"{label}: latency p50", median(latencies), "ms", Target("<=", P50_TARGET_MS), samples=len(latencies)),
        Figure(f"{label}: latency p99", percentile(latencies, 99), "ms", samples=len(latencies)),
        Figure(f"{label}: requests/s", rps, "req/s", Target(">=", RPS_TARGET) if target_rps else None, note=note),
    ]


def measure(options: Options) -> CaseResult:
    if not has_tenancy():
        raise Skip("no tenancy in this tree (shared.tenancy)")
    requests, warmup = (200, 40) if options.quick else (2000, 200)
    figures: list[Figure] = []
    details: dict[str, Any] = {"tenants": len(TENANTS), "clients": CLIENTS, "requests": requests}
    with tempfile.TemporaryDirectory(prefix="cloudact-bench-p4-") as tmp_name:
        tmp = Path(tmp_name)
        config_dir = tmp / "tenant_configs"
        for tenant in TENANTS:
            write_bench_tenant(config_dir, tenant)
        progress(f"P4: {requests} admissions in process (SQLite state)")
        latencies, rps = in_process(config_dir, tmp / "home-inprocess", requests)
        figures += _figures("in process, SQLite", latencies, rps, target_rps=False)
        setups: list[tuple[str, str, bool]] = [
            ("one api process, SQLite state + Pub/Sub emulator", "sqlite", True),
            ("one api process, Firestore + Pub/Sub emulators", "firestore", False),
        ]
        with emulator_servers("P4") as servers, process_env(servers.env):
            for label, state, target_rps in setups:
                progress(f"P4: {requests} admissions over HTTP, {CLIENTS} clients ({label})")
                alone, loaded, rps = one_api_process(tmp, config_dir, servers.env, state, requests, warmup)
                note = f"{CLIENTS} clients: p50 {median(loaded):.1f} ms, p99 {percentile(loaded, 99):.1f} ms"
                figures += _figures(label, alone, rps, target_rps, note)
    return CaseResult("P4", CASE.title, "measured", figures, details=details)


CASE = Case("P4", "execute admission (auth + quota + record + publish): latency and requests/s", measure)
