"""The delivery state machine on the real SQLite state store and real channels (the local outbox, a closed port):
one send per notification under concurrency, cooldowns, retries, leases, permanent failures."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from shared.clock import iso, utc_now
from shared.notify.config import DeliveryPolicy, OutboxChannel, RootNotifications, SlackChannel, SlackPolicy
from shared.notify.delivery import Delivery, Outcome, deliver, delivery_path, give_up_event, list_deliveries
from shared.notify.message import Message
from shared.notify.routing import ChannelTarget
from shared.runtime.context import Context
from shared.runtime.settings import Settings
from shared.secrets.store import put_secret
from tests.manual_clock import ManualClock

OUTBOX = ChannelTarget("team", "tenant", OutboxChannel(type="outbox"), "acme")
SLACK = ChannelTarget("team_slack", "tenant", SlackChannel(type="slack", webhook_secret="hook"), "acme")
MESSAGE = Message(title="acme/p failed", severity="error", headline="Run run_1 failed.", facts=(("Run", "run_1"),))


@pytest.fixture
def ctx(settings: Settings) -> Iterator[Context]:
    context = Context(settings)
    yield context
    context.close()


def root(**delivery: float) -> RootNotifications:
    policy = {"backoff_seconds": 0, "inline_wait_seconds": 5, "timeout_seconds": 2, **delivery}
    return RootNotifications(
        delivery=DeliveryPolicy.model_validate(policy), slack=SlackPolicy(allowed_hosts=["127.0.0.1"])
    )


def notification(did: str = "ev1~rule~team", channel: ChannelTarget = OUTBOX, **fields: object) -> Delivery:
    base = Delivery(
        did, "acme", "event", channel, MESSAGE, rule="rule", run_id="run_1", pipeline_id="p", event_type="run.failed"
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/services/T/B/x"


def concurrently(n: int, fn: object) -> list[Outcome]:
    barrier = threading.Barrier(n)
    results: list[Outcome] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        barrier.wait()
        outcome = fn(i)  # type: ignore[operator]
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_the_same_notification_from_eight_deliveries_at_once_is_sent_once(ctx: Context, settings: Settings) -> None:
    outcomes = concurrently(8, lambda _: deliver(ctx, notification(), root(), time.monotonic() + 5))
    statuses = sorted(o.status for o in outcomes)
    assert statuses.count("sent") == 1 and set(statuses) <= {"sent", "duplicate", "later"}
    files = list((settings.home / "outbox").iterdir())
    assert len(files) == 1 and files[0].suffix == ".txt" and "Run run_1 failed." in files[0].read_text()
    assert deliver(ctx, notification(), root(), time.monotonic()).status == "duplicate"
    [entry] = list_deliveries(ctx, "acme")
    assert (entry["status"], entry["attempts"], entry["target"]) == ("sent", 1, "local outbox")
    assert "lease_owner" not in entry


def test_cooldown_lets_one_of_many_concurrent_repeats_through_and_counts_the_rest(
    ctx: Context, manual_clock: ManualClock
) -> None:
    def repeat(i: int) -> Outcome:
        return deliver(ctx, notification(f"ev{i}~rule~team", cooldown_seconds=0.5), root(), time.monotonic() + 5)

    statuses = sorted(o.status for o in concurrently(8, repeat))
    assert statuses == ["sent"] + ["suppressed"] * 7
    suppressed = list_deliveries(ctx, "acme", status="suppressed")
    assert len(suppressed) == 7 and all(
        d["error"].startswith("cooldown: rule rule already notified team") for d in suppressed
    )
    manual_clock.advance(0.4)
    assert deliver(ctx, notification("ev8~rule~team", cooldown_seconds=0.5), root(), time.monotonic()).status == (
        "suppressed"
    )
    manual_clock.advance(0.2)  # the window is over: the next one goes out and says what was held back
    assert deliver(ctx, notification("ev9~rule~team", cooldown_seconds=0.5), root(), time.monotonic()).status == "sent"
    text = ctx.state.get(delivery_path("ev9~rule~team"))["text"]  # type: ignore[index]
    assert "8 similar notification(s) were suppressed by the" in text
    other_pipeline = notification("ev10~rule~team", cooldown_seconds=60, pipeline_id="other")
    assert deliver(ctx, other_pipeline, root(), time.monotonic()).status == "sent"  # cooldowns are per pipeline


def test_transient_errors_are_retried_then_recorded_as_failed(ctx: Context) -> None:
    put_secret(ctx, "acme", "hook", closed_port_url().encode())
    outcome = deliver(ctx, notification(channel=SLACK), root(max_attempts=3), time.monotonic() + 5)
    assert outcome.status == "failed"
    doc = ctx.state.get(delivery_path(outcome.delivery_id))
    assert doc is not None and doc["attempts"] == 3
    assert doc["error"].startswith("gave up after 3 attempt(s); last error: cannot reach 127.0.0.1")


def test_a_long_wait_is_handed_back_to_pubsub_and_not_retried_early(ctx: Context) -> None:
    put_secret(ctx, "acme", "hook", closed_port_url().encode())
    first = deliver(ctx, notification(channel=SLACK), root(backoff_seconds=30), time.monotonic() + 5)
    assert first.status == "later" and first.retry_after == 30
    doc = ctx.state.get(delivery_path(first.delivery_id))
    assert doc is not None and (doc["status"], doc["attempts"], doc["lease_owner"]) == ("retrying", 1, None)
    early = deliver(ctx, notification(channel=SLACK), root(backoff_seconds=30), time.monotonic() + 5)
    assert early.status == "later" and 0 < early.retry_after <= 10
    assert ctx.state.get(delivery_path(first.delivery_id))["attempts"] == 1  # type: ignore[index]


def test_an_expired_lease_is_taken_over_and_a_live_one_is_respected(ctx: Context) -> None:
    path = delivery_path("ev1~rule~team")
    held = {"status": "queued", "attempts": 0, "created_at": iso(utc_now()), "lease_owner": "other"}
    ctx.state.set(path, {**held, "lease_until": iso(utc_now() + timedelta(minutes=1))})
    assert deliver(ctx, notification(), root(), time.monotonic()).status == "later"  # another worker is sending
    ctx.state.set(path, {**held, "lease_until": iso(utc_now() - timedelta(seconds=1))})  # ... and it died
    assert deliver(ctx, notification(), root(), time.monotonic()).status == "sent"


def test_a_permanent_failure_releases_the_cooldown(ctx: Context) -> None:
    put_secret(ctx, "acme", "hook", b"https://hooks.evil.example/x")  # not an allowed host: permanent
    failed = deliver(ctx, notification("a~rule~team_slack", SLACK, cooldown_seconds=600), root(), time.monotonic())
    assert failed.status == "failed"
    entry = ctx.state.get(delivery_path("a~rule~team_slack"))
    assert (
        entry is not None
        and entry["attempts"] == 1
        and "not in the root config's slack.allowed_hosts" in entry["error"]
    )
    assert deliver(ctx, notification("b~rule~team", cooldown_seconds=600), root(), time.monotonic()).status == "sent"


def test_outside_the_embedded_runtime_a_missing_secret_is_a_failure_not_an_outbox(tmp_path: Path) -> None:
    settings = Settings(runtime="emulators", state="sqlite", keys="local", home=tmp_path / "home")
    cloud_like = Context(settings)
    try:
        outcome = deliver(cloud_like, notification(channel=SLACK), root(), time.monotonic())
        doc = cloud_like.state.get(delivery_path(outcome.delivery_id))
        assert outcome.status == "failed" and doc is not None
        assert doc["error"] == "Slack webhook secret 'hook' of acme is not set"
        assert not (settings.home / "outbox").exists()
    finally:
        cloud_like.close()


def test_giving_up_on_an_event_fails_its_unfinished_notifications(ctx: Context) -> None:
    put_secret(ctx, "acme", "hook", closed_port_url().encode())
    pending = deliver(ctx, notification("ev1~rule~team_slack", SLACK, event_id="ev1"), root(backoff_seconds=30), 0)
    done = deliver(ctx, notification("ev1~rule~team", event_id="ev1"), root(), time.monotonic())
    assert (pending.status, done.status) == ("later", "sent")
    assert give_up_event(ctx.state, "ev1", "notifier gave up: dead-lettered after 5 deliveries") == 1
    statuses = {d["channel"]: (d["status"], d["error"]) for d in list_deliveries(ctx, "acme", run_id="run_1")}
    assert statuses == {
        "team_slack": ("failed", "notifier gave up: dead-lettered after 5 deliveries"),
        "team": ("sent", None),
    }
