"""P6: 10,000 tenants, each with a due scheduled pipeline: time to admit every run (embedded runtime), and the same path
on the Firestore + Pub/Sub emulators.

Built like production: tenant folders (tenant.yaml + pipelines/nightly.yaml with `schedule: 0 2 * * *`), each tenant
onboarded with `onboard_tenant` (as on GCP: no datasets provisioned, that is Terraform's), then one ScheduleTick per
tenant for the same due slot (`shared.scheduling.local.tick_message`, what Cloud Scheduler publishes) published at once
on an in-process bus (8 workers) to the real `scheduled_trigger` function entry point (cursor, misfire policy,
admission with the slot's idempotency key, run.requested published). Embedded, the ticks run as `cloudact schedule
tick` runs a slot this large: on `tick_processes_for(10,000)` worker processes (shared.app.tick_workers; none on one
CPU, and then one at a time, `EMBEDDED_MAX_CONCURRENCY`). The clock runs from the workers' start, then the publish,
to the bus going idle. Only the tick topic is consumed: what is measured is admission, not the runs executing
afterwards (they stay QUEUED). The admitted count is read back per tenant (the slot's idempotency pointer -> its run)
and must be exact; then a second copy of the ticks of up to 1,000 tenants is published and must admit nothing new.

On the emulators the function's state is the Firestore emulator and run.requested goes to the Pub/Sub emulator
(the ticks still arrive through the in-process bus: the push hop is P2's business). Onboarding 10,000 tenants there
alone would take minutes, so EMULATOR_TENANTS are measured and the rate is given for 10,000 (no target: the target
is the embedded runtime's).
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import Case, CaseResult, Figure, Options, Skip, Target, progress
from bench.tenants import has_tenancy

TARGET_EMBEDDED_S = 10.0
DUPLICATE_SAMPLE = 1_000
EMULATOR_TENANTS = 1_000
PROFILE_NOTE = (
    "Per tick (one process, ~0.75 ms on a quiet core): the first load of the tenant's pipeline and tenant.yaml (YAML "
    "in one event pass, validation), admission (5 SQLite writes and 3 reads: quota shard, slot, idempotency, run, "
    "cursor), delivery. Threads do not help under the GIL (2 or 8: 1.7-2x slower); worker processes do: 2 admit "
    "~1.45x one process's rate on 2 cores (the state file's write lock, the parent's share of the CPUs)"
)
PIPELINE_ID = "nightly"
SLOT = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
PIPELINE_YAML = f"""pipeline_id: {PIPELINE_ID}
description: A nightly no-op, due at 02:00 UTC.
schedule: {{cron: "0 2 * * *", timezone: UTC}}
steps:
  - step_id: noop
    ps_type: debug.noop
"""


def _write_configs(config_dir: Path, tenant_ids: list[str]) -> None:
    for tenant_id in tenant_ids:
        pipelines = config_dir / tenant_id / "pipelines"
        pipelines.mkdir(parents=True)
        (config_dir / tenant_id / "tenant.yaml").write_text(f"tenant_id: {tenant_id}\nname: {tenant_id}\n")
        (pipelines / f"{PIPELINE_ID}.yaml").write_text(PIPELINE_YAML)


def _admit_all(ctx: Any, bus: Any, tenant_ids: list[str], timeout_s: float) -> tuple[float, bool]:
    from shared.contracts import topics
    from shared.scheduling.local import tick_message

    messages = [tick_message(t, PIPELINE_ID, SLOT) for t in tenant_ids]
    started = time.monotonic()
    bus.publish(topics.SCHEDULE_TICKS, messages)
    drained = bool(bus.wait_idle(timeout_s))
    return time.monotonic() - started, drained


def _admitted(ctx: Any, tenant_ids: list[str]) -> tuple[int, set[str]]:
    from shared.scheduling.local import run_for_slot

    runs = [run_for_slot(ctx, t, PIPELINE_ID, SLOT) for t in tenant_ids]
    ids = {str(r["run_id"]) for r in runs if r}
    return sum(1 for r in runs if r), ids


def _onboard_all(ctx: Any, tenant_ids: list[str], threads: int) -> None:
    """Onboard every tenant (as P3), on `threads` threads: the emulator's round trips overlap."""
    from concurrent.futures import ThreadPoolExecutor

    from shared.lifecycle.onboarding import onboard_tenant

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda t: onboard_tenant(ctx, t, "starter", actor="bench"), tenant_ids))


def _tick_all(
    ctx: Any,
    tenant_ids: list[str],
    label: str,
    onboard_threads: int,
    max_concurrency: int | None,
    tick_processes: int = 0,
) -> dict[str, Any]:
    """Onboard, then time the due ticks of every tenant through scheduled_trigger; check the count and the dedup.
    `tick_processes` > 0: the ticks run on that many worker processes (shared.app.tick_workers), started inside the
    clock, as `cloudact schedule tick` starts them before it publishes a slot's ticks."""
    from functions.scheduled_trigger import scheduled_trigger
    from shared.adapters.inprocess_bus import InProcessBus
    from shared.app.embedded import to_cloud_event
    from shared.app.tick_workers import TickWorkers
    from shared.contracts import topics
    from shared.contracts.envelope import ReceivedMessage
    from shared.runtime.context import set_context

    tenants = len(tenant_ids)
    timeout_s = 900.0
    ticks = InProcessBus(workers=8, max_backoff_s=0.5, max_delivery_attempts=5)
    workers: TickWorkers | None = None
    previous = set_context(ctx)
    try:
        progress(f"P6 {label}: onboarding {tenants:,} tenants")
        started = time.monotonic()
        _onboard_all(ctx, tenant_ids, onboard_threads)
        onboarding_s = time.monotonic() - started

        def handler(message: ReceivedMessage) -> None:
            scheduled_trigger(to_cloud_event(ctx.settings.project, message))

        name = topics.subscription_name(topics.SCHEDULE_TICKS)
        ticks.subscribe(topics.SCHEDULE_TICKS, handler, name, max_concurrency=max_concurrency)
        started = time.monotonic()
        if tick_processes:
            progress(f"P6 {label}: starting {tick_processes} tick worker processes")
            workers = TickWorkers(ctx.settings, tick_processes, ctx.bus.publish)
            workers.start()
            ticks.reroute(name, workers.deliver, workers.max_concurrency)
        workers_start_s = time.monotonic() - started
        progress(f"P6 {label}: publishing {tenants:,} due ticks to scheduled_trigger")
        elapsed, drained = _admit_all(ctx, ticks, tenant_ids, timeout_s)
        admitted, run_ids = _admitted(ctx, tenant_ids)
        sample = tenant_ids[:: max(1, tenants // DUPLICATE_SAMPLE)]
        progress(f"P6 {label}: publishing the ticks of {len(sample):,} tenants again (duplicates)")
        dup_elapsed, dup_drained = _admit_all(ctx, ticks, sample, timeout_s)
        admitted_after, run_ids_after = _admitted(ctx, tenant_ids)
        failed = ticks.stats.nacked + ticks.stats.dead_lettered + ticks.stats.dropped
    finally:
        ticks.close()
        if workers is not None:
            workers.close()
        set_context(previous)
    if admitted != tenants or failed:
        note = f"{admitted:,} of {tenants:,} admitted, {failed} tick deliveries failed (see the log)"
        raise RuntimeError(f"{label}: {note}" + ("" if drained else f" (not idle after {timeout_s} s)"))
    return {
        "tenants": tenants,
        "elapsed": workers_start_s + elapsed,
        "workers_start_s": round(workers_start_s, 2),
        "tick_processes": tick_processes,
        "admitted": admitted,
        "new_on_duplicates": len(run_ids_after - run_ids) + (admitted_after - admitted),
        "duplicates": len(sample),
        "dup_elapsed": dup_elapsed,
        "onboarding_s": round(onboarding_s, 2),
        "drained": drained and dup_drained,
        "max_concurrency": workers.max_concurrency if workers is not None else max_concurrency,
    }


def embedded(tmp: Path, tenants: int) -> dict[str, Any]:
    from shared.adapters.inprocess_bus import InProcessBus
    from shared.app.embedded import EMBEDDED_MAX_CONCURRENCY
    from shared.app.tick_workers import tick_processes_for
    from shared.contracts import topics
    from shared.runtime.context import Context
    from shared.runtime.settings import Settings

    config_dir = tmp / "tenant_configs"
    tenant_ids = [f"tenant_{i:05d}" for i in range(tenants)]
    progress(f"P6: writing {tenants:,} tenant folders")
    _write_configs(config_dir, tenant_ids)
    bus = InProcessBus()  # run.requested: published, consumed by nobody
    # warehouse="bigquery": onboarding then provisions no datasets, as on GCP (Terraform's tenant module owns them);
    # embedded it would open and keep one DuckDB database per tenant, 10,000 of them. Ticks never touch a warehouse.
    settings = Settings(runtime="embedded", warehouse="bigquery", home=tmp / "home", config_dir=config_dir)
    ctx = Context(settings, _bus=bus)
    try:
        # as the embedded runtime runs them: one at a time in its process (shared.app.embedded.start), and on worker
        # processes when a slot has enough of them (`cloudact schedule tick` -> EmbeddedRuntime.run_ticks_on_workers)
        concurrency = EMBEDDED_MAX_CONCURRENCY[topics.SUBSCRIBERS[topics.SCHEDULE_TICKS]]
        processes = tick_processes_for(tenants)
        return _tick_all(ctx, tenant_ids, "embedded", 1, concurrency, tick_processes=processes)
    finally:
        bus.close()
        ctx.close()


def emulators(tmp: Path, tenants: int) -> dict[str, Any]:
    import uuid

    from bench.servers import emulator_servers, process_env

    config_dir = tmp / "tenant_configs-emulators"
    tenant_ids = [f"tenant_{i:05d}" for i in range(tenants)]
    _write_configs(config_dir, tenant_ids)
    with emulator_servers("P6", bigquery=False) as servers, process_env(servers.env):
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]

        from shared.contracts import topics
        from shared.runtime.context import Context
        from shared.runtime.settings import Settings

        project = f"bench-p6-{uuid.uuid4().hex[:6]}"
        publisher = pubsub_v1.PublisherClient()
        publisher.create_topic(name=publisher.topic_path(project, topics.RUN_REQUESTS))  # no subscription: dropped
        home = tmp / "home-emulators"
        settings = Settings(
            runtime="emulators", bus="pubsub", state="firestore", warehouse="bigquery", project=project, home=home,
            config_dir=config_dir,
        )  # fmt: skip
        ctx = Context(settings)  # Firestore emulator state, Pub/Sub emulator bus
        try:
            # uncapped as before: each delivery waits on the emulators' round trips with the GIL released
            return _tick_all(ctx, tenant_ids, "emulators", onboard_threads=8, max_concurrency=None)
        finally:
            ctx.close()


def measure(options: Options) -> CaseResult:
    if not has_tenancy():
        raise Skip("no tenancy in this tree (shared.tenancy)")
    tenants = 1_000 if options.quick else 10_000
    emulator_tenants = 200 if options.quick else EMULATOR_TENANTS
    details: dict[str, Any] = {"path": "ScheduleTick -> in-process bus (8 workers) -> functions.scheduled_trigger"}
    with tempfile.TemporaryDirectory(prefix="cloudact-bench-p6-") as tmp_name:
        local = embedded(Path(tmp_name), tenants)
        details["embedded"] = local
        figures = _figures(local, "embedded", Target("<=", TARGET_EMBEDDED_S), PROFILE_NOTE)
        try:
            emulated = emulators(Path(tmp_name), emulator_tenants)
        except Skip as exc:
            details["emulators"] = f"not measured: {exc}"
        else:
            details["emulators"] = emulated
            per_10k = 10_000 / (emulated["tenants"] / emulated["elapsed"])
            note = f"at this rate 10,000 ticks take {per_10k:.0f} s (one process; scheduled_trigger scales out)"
            figures += _figures(emulated, "Firestore + Pub/Sub emulators", None, note)
    return CaseResult("P6", CASE.title, "measured", figures, details=details)


def _figures(result: dict[str, Any], label: str, target: Target | None, note: str) -> list[Figure]:
    tenants, elapsed = result["tenants"], result["elapsed"]
    return [
        Figure(
            f"admit {tenants:,} scheduled runs, {label}",
            elapsed,
            "s",
            target,
            note=f"{tenants / elapsed:,.0f} ticks/s, 8 bus workers, {_at_once(result)}. {note}",
        ),
        Figure(f"runs admitted, {label}", result["admitted"], "runs", Target(">=", tenants), note="exactly expected"),
        Figure(
            f"new runs from a second copy of {result['duplicates']:,} ticks, {label}",
            result["new_on_duplicates"],
            "runs",
            Target("<=", 0),
            note=f"{result['dup_elapsed']:.1f} s",
        ),
    ]


def _at_once(result: dict[str, Any]) -> str:
    limit = result.get("max_concurrency")
    at_once = "as many ticks at once as workers" if limit is None else f"at most {limit} tick(s) at once"
    if result.get("tick_processes"):
        at_once += (
            f" on {result['tick_processes']} worker processes (started in {result['workers_start_s']} s, counted)"
        )
    return at_once


CASE = Case("P6", "10,000 tenants with a due scheduled pipeline: time to admit all runs", measure)
