"""Admission: daily/monthly/concurrency limits reserved together, idempotent release, no charge for a repeated key,
reclaimed orphan slots, and contention answered with 503 + Retry-After (never a 500, never an over-admission)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from shared.adapters.sqlite_state import SqliteStateStore
from shared.api.http import handle
from shared.clock import utc_now
from shared.contracts.messages import Trigger
from shared.errors import Forbidden, NotFound, ServiceUnavailable
from shared.lifecycle.onboarding import onboard_tenant
from shared.ports.state import Versioned
from shared.runs import admission
from shared.runs.admission import QuotaExceeded, admit_run, release_run_slot, usage
from shared.runs.machine import transition_run
from shared.runtime.context import Context
from shared.runtime.settings import Settings
from shared.tenancy import quota_shards
from shared.tenancy.tenants import update_tenant

API = Trigger(type="api")


@pytest.fixture
def ctx(settings: Settings) -> Iterator[Context]:
    context = Context(settings)
    onboard_tenant(context, "testco", "starter")
    yield context
    context.close()


def limit(ctx: Context, **limits: int) -> None:
    update_tenant(ctx, "testco", {"limits": limits})


def admit(ctx: Context, key: str | None = None) -> Any:
    created, _ = admit_run(ctx, "testco", "fan_join", {}, API, key)
    return created


def test_daily_limit_refuses_with_429_until_midnight(ctx: Context) -> None:
    limit(ctx, runs_per_day=3)
    for _ in range(3):
        assert admit(ctx).created
    with pytest.raises(QuotaExceeded) as info:
        admit(ctx)
    assert info.value.status == 429 and info.value.details["limit"] == "runs_per_day"
    assert 0 < info.value.retry_after_seconds <= 86401
    assert usage(ctx, "testco")["runs_today"] == 3


def test_monthly_limit(ctx: Context) -> None:
    limit(ctx, runs_per_month=2)
    admit(ctx), admit(ctx)
    with pytest.raises(QuotaExceeded) as info:
        admit(ctx)
    assert info.value.details["limit"] == "runs_per_month"


def test_concurrency_slot_is_released_once_per_run(ctx: Context) -> None:
    limit(ctx, concurrent_runs=2)
    first, second = admit(ctx), admit(ctx)
    with pytest.raises(QuotaExceeded) as info:
        admit(ctx)
    assert info.value.details["limit"] == "concurrent_runs"
    release_run_slot(ctx, first.doc)
    release_run_slot(ctx, first.doc)  # idempotent: the second call frees nothing more
    third = admit(ctx)
    with pytest.raises(QuotaExceeded):
        admit(ctx)
    assert sorted(usage(ctx, "testco")["active_run_ids"]) == sorted([second.run_id, third.run_id])


def test_a_repeated_idempotency_key_is_not_charged(ctx: Context) -> None:
    first = admit(ctx, "nightly")
    again = admit(ctx, "nightly")
    assert not again.created and again.run_id == first.run_id
    assert usage(ctx, "testco")["runs_today"] == 1 and usage(ctx, "testco")["concurrent_runs"] == 1


def test_suspended_and_unknown_tenants_are_refused(ctx: Context) -> None:
    update_tenant(ctx, "testco", {"status": "suspended"})
    with pytest.raises(Forbidden):
        admit(ctx)
    with pytest.raises(NotFound):
        admit_run(ctx, "acme", "daily_sales", {}, API)  # has a config folder but was never onboarded


def test_slot_of_a_run_that_ended_without_release_is_reclaimed(ctx: Context) -> None:
    limit(ctx, concurrent_runs=1)
    leaked = admit(ctx)
    transition_run(ctx.state, leaked.run_id, "FAILED", error="finalisation crashed")  # no release_run_slot
    assert admit(ctx).created  # the terminal run's slot is taken back when the limit is hit
    assert leaked.run_id not in usage(ctx, "testco")["active_run_ids"]


def test_counts_start_again_on_a_new_day(ctx: Context) -> None:
    limit(ctx, runs_per_day=1, runs_per_month=1)
    admit(ctx)
    with pytest.raises(QuotaExceeded):
        admit(ctx)
    path = quota_shards.shard_path("testco", 0)  # the only shard of a limit of 1, as last month's admission left it
    ctx.state.set(path, {**(ctx.state.get(path) or {}), "day": "2000-01-01", "month": "2000-01"})
    assert admit(ctx).created
    assert usage(ctx, "testco")["runs_today"] == 1 and usage(ctx, "testco")["runs_this_month"] == 1


def test_day_and_month_are_counted_on_two_shards_when_no_shard_has_room_for_both(ctx: Context) -> None:
    """Earlier days spread the month unevenly: shard 0 has month room but its day share is used, shard 1 the
    reverse. The run is admitted (day on 1, month on 0), not refused while both limits have room."""
    limit(ctx, runs_per_day=2, runs_per_month=2)
    today, month = utc_now().date().isoformat(), utc_now().strftime("%Y-%m")
    ctx.state.set(quota_shards.shard_path("testco", 0), {"day": today, "day_used": 1, "month": month, "month_used": 0})
    ctx.state.set(quota_shards.shard_path("testco", 1), {"day": today, "day_used": 0, "month": month, "month_used": 1})
    assert admit(ctx).created
    shards = [ctx.state.get(quota_shards.shard_path("testco", i)) or {} for i in (0, 1)]
    assert [(d["day_used"], d["month_used"]) for d in shards] == [(1, 1), (1, 1)]
    with pytest.raises(QuotaExceeded) as info:
        admit(ctx)
    assert info.value.details["limit"] == "runs_per_day"


def contended(path: str) -> bool:
    return "/quota_shards/" in path or "/slots/" in path


class AlwaysOutraced(SqliteStateStore):
    """A real store where another writer touches every quota shard and slot right after this one reads it, and
    makes it first whenever this one tries to create it."""

    def get_versioned(self, path: str) -> Versioned | None:
        current = super().get_versioned(path)
        if contended(path):
            self.increment(path, "competing_writes")
        return current

    def create(self, path: str, data: dict[str, Any]) -> bool:
        if contended(path):
            self.increment(path, "competing_writes")
        return super().create(path, data)


def test_contention_is_a_503_with_retry_after_not_a_500(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admission, "CAS_BUDGET_S", 0.2)
    ctx = Context(settings, _state=AlwaysOutraced(settings.home / "contended.sqlite3"))
    try:
        onboard_tenant(ctx, "testco", "starter")
        with pytest.raises(ServiceUnavailable) as info:
            admit(ctx)
        assert info.value.retry_after_seconds >= 1
        assert usage(ctx, "testco")["runs_today"] == 0  # nothing was reserved
        from shared.lifecycle.local_tenants import bootstrap_local_tenants

        key = bootstrap_local_tenants(ctx).api_keys["testco"]
        response = handle(
            ctx,
            "POST",
            "/api/v1/tenants/testco/pipelines/execute",
            {},
            {"X-API-Key": key},
            b'{"pipeline_id": "fan_join"}',
        )
        assert response.status == 503 and response.body["error"] == "UNAVAILABLE"
        assert int(response.headers["Retry-After"]) >= 1
    finally:
        ctx.close()
