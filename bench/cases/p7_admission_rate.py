"""P7: one tenant's sustained admissions/s against the Firestore emulator, and whether any run was over-admitted.

Admission is `shared.runs.admission.admit_run`, the gate the API, schedules, backfills and re-runs share (pipeline,
tenant, idempotency, day/month quota shards, concurrency slot, run + idempotency documents), on a Firestore emulator
this case starts for itself (a fresh JVM: a few seconds of admissions for another tenant warm it up first, not
measured; production Firestore has no such warm-up). Three phases, each with CLIENTS threads admitting for ONE
tenant:

- sustained: for a fixed time, every admitted run is released HOLD_S later by the client that admitted it (runs
  end, as they would), with SUSTAINED_CONCURRENT concurrent runs allowed and no day quota in the way (limits are
  the races' business): admissions/s, latency, and the hottest document's writes/s (every successful write is
  logged per document path: Firestore sustains ~1 write/s per document, which the old single admission document
  hit at 0.5 runs/s);
- daily quota race: a tenant allowed DAILY_QUOTA runs a day, threads admitting until refused: admitted must be
  exactly the quota;
- concurrency race: a tenant allowed CONCURRENT runs at once, nothing released: admitted must be exactly that.

Over-admitted = runs admitted past a quota, read back from the state store (run documents and usage()), summed over
the two races; target 0. Fewer than the quota is also reported (a limiter that refuses early is a bug too).
"""

from __future__ import annotations

import collections
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import Case, CaseResult, Figure, Options, Skip, Target, median, percentile, progress
from bench.pipelines import write_bench_tenant
from bench.servers import emulator_servers, process_env
from bench.tenants import has_tenancy, onboard

TARGET_PER_S = 50.0
HOTTEST_TARGET_PER_S = 1.0
CLIENTS = 16
HOLD_S = 2.0
SUSTAINED_CONCURRENT = 1_000
DAILY_QUOTA = 300
CONCURRENT = 50
PIPELINE = "seq10"
WRITES = ("create", "set", "update_if", "increment", "delete")


class WriteLog:
    """A StateStore that forwards every call and logs (path, time) of each write that took effect."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.writes: list[tuple[str, float]] = []
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in WRITES:
            return attr

        def logged(path: str, *args: Any, **kwargs: Any) -> Any:
            result = attr(path, *args, **kwargs)
            if result is not False:  # create / update_if report a lost race as False: nothing was written
                with self._lock:
                    self.writes.append((path, time.monotonic()))
            return result

        return logged

    def hottest(self, since: float, until: float) -> tuple[str, float, int]:
        """(path, its writes/s averaged over [since, until], its most writes in any one second)."""
        with self._lock:
            times: dict[str, list[float]] = collections.defaultdict(list)
            for path, at in self.writes:
                if since <= at <= until:
                    times[path].append(at)
        if not times:
            return "-", 0.0, 0
        path, stamps = max(times.items(), key=lambda item: len(item[1]))
        peak = max(sum(1 for t in stamps if s <= t < s + 1.0) for s in stamps)
        return path, len(stamps) / max(until - since, 1e-9), peak


def _admitting(
    ctx: Any, tenant: str, until: Callable[[str], bool], before_each: Callable[[list[str]], None] | None = None
) -> tuple[collections.Counter[str], list[float]]:
    """One client thread's loop: admit until `until(outcome)` says stop; `before_each` sees the run ids admitted so
    far. Returns (outcomes, latencies in ms)."""
    from shared.contracts.messages import Trigger
    from shared.errors import ClientError
    from shared.runs.admission import admit_run

    outcomes: collections.Counter[str] = collections.Counter()
    latencies: list[float] = []
    admitted: list[str] = []
    while True:
        if before_each is not None:
            before_each(admitted)
        started = time.perf_counter()
        try:
            created, _ = admit_run(ctx, tenant, PIPELINE, {}, Trigger(type="api"))
            outcome = "admitted"
            admitted.append(created.run_id)
            latencies.append((time.perf_counter() - started) * 1000)
        except ClientError as exc:
            outcome = str(exc.status)
        outcomes[outcome] += 1
        if until(outcome):
            return outcomes, latencies


def _clients(work: Callable[[], Any]) -> tuple[collections.Counter[str], list[float], float]:
    """Run CLIENTS threads of `work`: (outcomes summed, latencies, wall seconds)."""
    results: list[Any] = []
    lock = threading.Lock()

    def run() -> None:
        result = work()
        with lock:
            results.append(result)

    threads = [threading.Thread(target=run) for _ in range(CLIENTS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcomes: collections.Counter[str] = collections.Counter()
    latencies: list[float] = []
    for counted, measured in results:
        outcomes.update(counted)
        latencies.extend(measured)
    return outcomes, latencies, time.monotonic() - started


def sustained(ctx: Any, log: WriteLog, tenant: str, seconds: float) -> dict[str, Any]:
    """Each client ends (releases, as finalisation does) its own runs HOLD_S after admitting them, before its next
    admission, so releases cost what they cost in the same process."""
    from shared.runs.admission import release_run_slot

    deadline = time.monotonic() + seconds

    def client() -> Any:
        admitted_at: dict[str, float] = {}
        released = [0]

        def end_due_runs(admitted: list[str]) -> None:
            now = time.monotonic()
            for run_id in admitted[len(admitted_at) :]:
                admitted_at[run_id] = now
            while released[0] < len(admitted) and admitted_at[admitted[released[0]]] + HOLD_S <= now:
                release_run_slot(ctx, {"tenant_id": tenant, "run_id": admitted[released[0]]})
                released[0] += 1

        return _admitting(ctx, tenant, lambda _: time.monotonic() >= deadline, end_due_runs)

    started = time.monotonic()
    outcomes, latencies, _ = _clients(client)
    elapsed = time.monotonic() - started
    path, hottest_rate, peak = log.hottest(started, started + elapsed)
    return {"outcomes": outcomes, "latencies": latencies, "elapsed": elapsed, "hottest": (path, hottest_rate, peak)}


def race(ctx: Any, tenant: str, limit_name: str, quota: int) -> dict[str, Any]:
    """Threads admitting until refused (429); how many were admitted against `quota`, read back from the store."""
    from shared.ports.state import Filter
    from shared.runs.admission import usage

    outcomes, _, elapsed = _clients(lambda: _admitting(ctx, tenant, lambda o: o == "429"))
    stored = len(ctx.state.list("runs", [Filter("tenant_id", "==", tenant)]))
    report = usage(ctx, tenant)
    counted = report["runs_today"] if limit_name == "runs_per_day" else report["concurrent_runs"]
    return {"admitted": outcomes["admitted"], "stored": stored, "counted": counted, "elapsed": elapsed, **outcomes}


def measure(options: Options) -> CaseResult:
    if not has_tenancy():
        raise Skip("no tenancy in this tree (shared.tenancy)")
    seconds, warmup = (5.0, 2.0) if options.quick else (20.0, 8.0)
    with tempfile.TemporaryDirectory(prefix="cloudact-bench-p7-") as tmp_name:
        tmp = Path(tmp_name)
        config_dir = tmp / "tenant_configs"
        tenants = {"warmup": "warmco", "sustained": "burstco", "daily": "dailyco", "concurrent": "slotco"}
        for tenant in tenants.values():
            write_bench_tenant(config_dir, tenant)
        with emulator_servers("P7", bigquery=False) as servers, process_env(servers.env):
            from shared.adapters.firestore_state import FirestoreStateStore
            from shared.adapters.inprocess_bus import InProcessBus
            from shared.plans import MAX_LIMIT
            from shared.runtime.context import Context
            from shared.runtime.settings import Settings

            project = f"bench-p7-{uuid.uuid4().hex[:6]}"
            settings = Settings(
                runtime="emulators", state="firestore", warehouse="duckdb", keys="local", project=project,
                home=tmp / "home", config_dir=config_dir,
            )  # fmt: skip
            log = WriteLog(FirestoreStateStore(project))
            bus = InProcessBus()
            ctx = Context(settings, _state=log, _bus=bus)
            try:
                unlimited = {"runs_per_day": MAX_LIMIT, "runs_per_month": MAX_LIMIT, "requests_per_minute": MAX_LIMIT}
                onboard(ctx, tenants["sustained"], {**unlimited, "concurrent_runs": SUSTAINED_CONCURRENT})
                onboard(ctx, tenants["daily"], {**unlimited, "runs_per_day": DAILY_QUOTA, "concurrent_runs": MAX_LIMIT})
                onboard(ctx, tenants["concurrent"], {**unlimited, "concurrent_runs": CONCURRENT})
                onboard(ctx, tenants["warmup"], {**unlimited, "concurrent_runs": SUSTAINED_CONCURRENT})
                progress(f"P7: warming the emulator's JVM up for {warmup:.0f} s (not measured)")
                sustained(ctx, log, tenants["warmup"], warmup)
                progress(f"P7: {CLIENTS} threads admitting for one tenant for {seconds:.0f} s (Firestore emulator)")
                steady = sustained(ctx, log, tenants["sustained"], seconds)
                progress(f"P7: daily quota race ({DAILY_QUOTA} runs/day), then concurrency race ({CONCURRENT} at once)")
                daily = race(ctx, tenants["daily"], "runs_per_day", DAILY_QUOTA)
                slots = race(ctx, tenants["concurrent"], "concurrent_runs", CONCURRENT)
            finally:
                bus.close()
                ctx.close()
    return _result(steady, daily, slots, seconds)


def _result(steady: dict[str, Any], daily: dict[str, Any], slots: dict[str, Any], seconds: float) -> CaseResult:
    outcomes, latencies = steady["outcomes"], steady["latencies"]
    rate = outcomes["admitted"] / steady["elapsed"]
    path, hottest_rate, peak = steady["hottest"]
    races = ((daily, DAILY_QUOTA), (slots, CONCURRENT))
    over = sum(max(0, max(r["admitted"], r["stored"], r["counted"]) - quota) for r, quota in races)
    short = max(0, DAILY_QUOTA - daily["stored"]) + max(0, CONCURRENT - slots["stored"])
    figures = [
        Figure(
            "one tenant, sustained admissions/s (Firestore emulator)",
            rate,
            "adm/s",
            Target(">=", TARGET_PER_S),
            note=f"{CLIENTS} threads for {seconds:.0f} s, runs released after {HOLD_S:.0f} s; {dict(outcomes)}",
        ),
        Figure("admission latency p50", median(latencies), "ms", samples=len(latencies)),
        Figure("admission latency p99", percentile(latencies, 99), "ms", samples=len(latencies)),
        Figure(
            "hottest document, writes/s over the sustained phase",
            hottest_rate,
            "writes/s",
            Target("<=", HOTTEST_TARGET_PER_S),
            note=f"{path}; at most {peak} in one second (Firestore sustains ~1/s per document)",
        ),
        Figure(
            "runs over-admitted",
            over,
            "runs",
            Target("<=", 0),
            note=(
                f"daily quota {DAILY_QUOTA}: {daily['admitted']} admitted, {daily['stored']} stored, usage "
                f"{daily['counted']} ({daily['admitted'] / daily['elapsed']:.0f} adm/s); concurrency {CONCURRENT}: "
                f"{slots['admitted']} admitted, {slots['stored']} stored, {slots['counted']} holding a slot"
            ),
        ),
        Figure("runs refused below a quota (early)", short, "runs", Target("<=", 0)),
    ]
    details = {
        "clients": CLIENTS,
        "sustained_outcomes": dict(outcomes),
        "daily_race": {k: v for k, v in daily.items() if k != "elapsed"},
        "concurrency_race": {k: v for k, v in slots.items() if k != "elapsed"},
        "path": "shared.runs.admission.admit_run in process -> Firestore emulator (quota shards, slots, run docs)",
    }
    return CaseResult("P7", CASE.title, "measured", figures, details=details)


CASE = Case("P7", "one tenant's sustained admissions/s on Firestore, never over-admitting", measure)
