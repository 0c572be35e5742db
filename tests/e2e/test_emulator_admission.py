"""Admission on the Firestore emulator: never over-admits with 3 concurrent threads; contention surfaces as 503 with
Retry-After through the API, never as a 500. (More threads are pointless here: the emulator serialises contended
writes; see the project's notes on its 2 s lock timeout.)"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.inprocess_bus import InProcessBus
from shared.api.http import handle
from shared.contracts.messages import Trigger
from shared.errors import ClientError
from shared.lifecycle.local_tenants import bootstrap_local_tenants
from shared.ports.state import Filter, Versioned
from shared.runs import admission
from shared.runs.admission import admit_run, release_run_slot, usage
from shared.runtime.context import Context
from shared.runtime.settings import Settings
from shared.tenancy.tenants import update_tenant
from tests.e2e.conftest import require_emulators

pytestmark = [pytest.mark.emulator, pytest.mark.timeout(180)]


def _settings(tmp_path: Path, config_dir: Path) -> Settings:
    return Settings(
        runtime="emulators",
        state="firestore",
        warehouse="duckdb",
        keys="local",
        project=f"adm-{uuid.uuid4().hex[:10]}",
        home=tmp_path / ".cloudact",
        config_dir=config_dir,
    )


@pytest.fixture
def ctx(tmp_path: Path, config_dir: Path) -> Iterator[Context]:
    require_emulators()
    bus = InProcessBus()  # no subscribers: published run requests go nowhere, admission is what is tested
    context = Context(_settings(tmp_path, config_dir), _bus=bus)
    yield context
    bus.close()
    context.close()


def test_three_threads_never_over_admit_on_firestore(ctx: Context) -> None:
    keys = bootstrap_local_tenants(ctx).api_keys
    update_tenant(ctx, "testco", {"limits": {"runs_per_day": 5, "requests_per_minute": 10_000}})
    outcomes: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(3)

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(4):
            try:
                admit_run(ctx, "testco", "fan_join", {}, Trigger(type="api"), f"t{n}-{i}")
                result = "admitted"
            except ClientError as exc:
                result = str(exc.status)
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    counts = Counter(outcomes)
    assert counts["admitted"] == 5 and set(counts) <= {"admitted", "429", "503"}, counts
    runs = ctx.state.list("runs", [Filter("tenant_id", "==", "testco")])
    assert len(runs) == 5 and usage(ctx, "testco")["runs_today"] == 5
    for _, run in runs:
        release_run_slot(ctx, run)
        release_run_slot(ctx, run)
    assert usage(ctx, "testco")["concurrent_runs"] == 0

    statuses: list[int] = []
    api_barrier = threading.Barrier(3)

    def api_call() -> None:
        api_barrier.wait()
        response = handle(
            ctx,
            "POST",
            "/api/v1/tenants/testco/pipelines/execute",
            {},
            {"X-API-Key": keys["testco"]},
            json.dumps({"pipeline_id": "fan_join"}).encode(),
        )
        with lock:
            statuses.append(response.status)

    callers = [threading.Thread(target=api_call) for _ in range(3)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(150)
    assert statuses == [429, 429, 429]  # the day's 5 are used up: refused, not 500


def test_contention_on_firestore_is_a_503_with_retry_after(
    tmp_path: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_emulators()
    from shared.adapters.firestore_state import FirestoreStateStore

    class OutracedFirestore(FirestoreStateStore):
        """The real emulator, with a competing write landing on every quota shard and slot after each read of it,
        and before each create() of it."""

        def get_versioned(self, path: str) -> Versioned | None:
            current = super().get_versioned(path)
            if "/quota_shards/" in path or "/slots/" in path:
                self.increment(path, "competing_writes")
            return current

        def create(self, path: str, data: dict[str, Any]) -> bool:
            if "/quota_shards/" in path or "/slots/" in path:
                self.increment(path, "competing_writes")
            return super().create(path, data)

    settings = _settings(tmp_path, config_dir)
    monkeypatch.setattr(admission, "CAS_BUDGET_S", 0.5)
    ctx = Context(settings, _state=OutracedFirestore(settings.project), _bus=InProcessBus())
    try:
        keys = bootstrap_local_tenants(ctx).api_keys
        response = handle(
            ctx,
            "POST",
            "/api/v1/tenants/testco/pipelines/execute",
            {},
            {"X-API-Key": keys["testco"]},
            b'{"pipeline_id": "fan_join"}',
        )
        assert response.status == 503 and int(response.headers["Retry-After"]) >= 1, response.body
        assert usage(ctx, "testco")["runs_today"] == 0
    finally:
        ctx.close()
