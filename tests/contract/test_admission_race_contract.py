"""Admission races on both state stores: many threads admitting for ONE tenant at once get exactly the quota - the
daily and monthly run quotas (below and above the shard count) and the concurrency limit - never one more, never
one fewer, and releasing (twice per run, as a repeated finalisation does) frees exactly the released slots.

The firestore parameter runs against the Firestore emulator with a fresh project per test. Admission uses no
transactions (create() and compare-and-set on sharded documents), so the emulator's lock collapse does not apply.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shared.adapters.inprocess_bus import InProcessBus
from shared.adapters.sqlite_state import SqliteStateStore
from shared.contracts.messages import Trigger
from shared.contracts.state_paths import run_path
from shared.errors import ClientError
from shared.lifecycle.onboarding import onboard_tenant
from shared.ports.state import Filter, StateStore
from shared.runs.admission import active_runs, admit_run, release_run_slot, usage
from shared.runtime.context import Context
from shared.runtime.settings import Settings
from shared.tenancy import quota_shards, ratelimit
from shared.tenancy.tenants import update_tenant
from tests.servers import server_missing

pytestmark = pytest.mark.timeout(300)
TENANT = "testco"


@pytest.fixture(params=["sqlite", pytest.param("firestore", marks=pytest.mark.emulator)])
def ctx(request: pytest.FixtureRequest, tmp_path: Path, config_dir: Path) -> Iterator[Context]:
    store: StateStore
    if request.param == "firestore":
        if not os.environ.get("FIRESTORE_EMULATOR_HOST"):
            server_missing("Firestore emulator not running (FIRESTORE_EMULATOR_HOST unset): `make test` starts it")
        from shared.adapters.firestore_state import FirestoreStateStore

        store = FirestoreStateStore(project=f"race-{uuid.uuid4().hex[:8]}")
    else:
        store = SqliteStateStore(tmp_path / "state.sqlite3")
    bus = InProcessBus()  # nothing subscribes: admission is what is tested
    context = Context(
        Settings(runtime="embedded", home=tmp_path / ".cloudact", config_dir=config_dir), _state=store, _bus=bus
    )
    onboard_tenant(context, TENANT, "enterprise")
    yield context
    bus.close()
    context.close()


def limit(ctx: Context, **limits: int) -> None:
    base = {"runs_per_day": 100_000, "runs_per_month": 100_000, "concurrent_runs": 100_000}
    update_tenant(ctx, TENANT, {"limits": {**base, **limits}})


def hammer(ctx: Context, threads: int) -> tuple[list[str], Counter[str]]:
    """`threads` threads released together, each admitting until it is refused with 429: (admitted run ids,
    outcomes). A 503 (contention) is retried, like a client honouring Retry-After."""
    barrier = threading.Barrier(threads)
    admitted: list[str] = []
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def worker(_: int) -> None:
        barrier.wait(timeout=60)
        while True:
            try:
                created, _spec = admit_run(ctx, TENANT, "fan_join", {}, Trigger(type="api"))
                result = "admitted"
            except ClientError as exc:
                result = str(exc.status)
            with lock:
                outcomes[result] += 1
                if result == "admitted":
                    admitted.append(created.run_id)
            if result == "429":
                return

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(worker, range(threads)))
    return admitted, outcomes


def stored_runs(ctx: Context) -> int:
    return len(ctx.state.list("runs", [Filter("tenant_id", "==", TENANT)]))


def threads_for(ctx: Context) -> int:
    return 16 if isinstance(ctx.state, SqliteStateStore) else 12


@pytest.mark.parametrize("quota", [37, quota_shards.SHARDS * 2 + 5])
def test_daily_quota_is_exact_under_a_race(ctx: Context, quota: int) -> None:
    limit(ctx, runs_per_day=quota)
    admitted, outcomes = hammer(ctx, threads_for(ctx))
    assert len(admitted) == quota, outcomes
    assert set(outcomes) <= {"admitted", "429", "503"}, outcomes
    assert stored_runs(ctx) == quota and len(set(admitted)) == quota
    report = usage(ctx, TENANT)
    assert report["runs_today"] == quota and report["runs_this_month"] == quota
    assert report["remaining"]["runs_today"] == 0 and report["concurrent_runs"] == quota


def test_monthly_quota_is_exact_under_a_race(ctx: Context) -> None:
    limit(ctx, runs_per_month=23)
    admitted, outcomes = hammer(ctx, threads_for(ctx))
    assert len(admitted) == 23 and stored_runs(ctx) == 23, outcomes
    assert usage(ctx, TENANT)["runs_this_month"] == 23


def test_concurrency_limit_is_exact_and_release_frees_exactly_what_ended(ctx: Context) -> None:
    limit(ctx, concurrent_runs=12)
    first, outcomes = hammer(ctx, threads_for(ctx))
    assert len(first) == 12 and sorted(active_runs(ctx.state, TENANT)) == sorted(first), outcomes
    ended = first[:5]
    runs = [ctx.state.get(run_path(run_id)) or {} for run_id in ended]
    with ThreadPoolExecutor(max_workers=10) as pool:  # every run finalised twice, concurrently
        list(pool.map(lambda run: release_run_slot(ctx, run), runs + runs))
    assert sorted(active_runs(ctx.state, TENANT)) == sorted(first[5:])
    second, outcomes = hammer(ctx, threads_for(ctx))
    assert len(second) == 5, outcomes
    held = active_runs(ctx.state, TENANT)
    assert sorted(held) == sorted(first[5:] + second)
    assert usage(ctx, TENANT)["runs_today"] == 17 and stored_runs(ctx) == 17


def test_sharded_rate_limit_is_never_late_under_a_race(ctx: Context) -> None:
    """1,000 requests at once against 600 a minute (10 shards of 60): exactly 600 allowed, all in one window."""
    moment = 120 * 60 + 5.0  # a fixed instant: every request falls in the same one-minute window
    assert ratelimit.shard_count(600) == 10
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def request(_: int) -> None:
        try:
            ratelimit.check_tenant_rate(ctx, TENANT, 600, now=moment)
            result = "allowed"
        except ratelimit.RateLimited as exc:
            assert exc.window.remaining == 0 and exc.status == 429
            result = "refused"
        with lock:
            outcomes[result] += 1

    with ThreadPoolExecutor(max_workers=threads_for(ctx)) as pool:
        list(pool.map(request, range(1_000)))
    assert outcomes == {"allowed": 600, "refused": 400}
    with pytest.raises(ratelimit.RateLimited):  # the window stays spent
        ratelimit.check_tenant_rate(ctx, TENANT, 600, now=moment)
    assert ratelimit.check_tenant_rate(ctx, TENANT, 600, now=moment + 60).remaining > 0  # the next one is not
