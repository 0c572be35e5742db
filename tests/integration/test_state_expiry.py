"""Documents of collections that grow forever carry `expire_at` (Firestore TTL deletes them; the embedded store purges
them in the maintenance tick), with the retention of their kind (Settings: run/audit/notification_retention_days)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.ports.state import EXPIRE_AT
from shared.runs.watchdog import watchdog
from shared.runtime.settings import Settings
from tests.conftest import run_to_end

EXPIRING: dict[str, str | float | None] = {
    "audit": "audit",
    "events": "notification",
    "notifications": "notification",
    "ratelimits": None,
    "runs": "run",
    "stages": "run",
    "snapshot": "run",
    "idempotency": "run",
    "claims": 7.0,
}
"""Collection -> the Settings retention its documents get, or days (claims: Pub/Sub's 7-day message retention), or
None (ratelimit windows: a day after the window)."""


def _documents(settings: Settings) -> list[tuple[str, dict[str, Any]]]:
    with sqlite3.connect(settings.home / "state.sqlite3") as db:
        rows = db.execute("SELECT collection, data FROM docs").fetchall()
    return [(str(collection), json.loads(data)) for collection, data in rows]


def test_every_growing_collection_expires_with_its_retention_and_maintenance_purges_it(
    runtime: Any, settings: Settings
) -> None:
    before = datetime.now(UTC) - timedelta(minutes=5)  # the runtime fixture onboarded the tenants (audited) before
    # acme's sales_team rule notifies (events, deliveries); the idempotency key leaves its key document
    run = run_to_end(runtime, "acme", "daily_sales", idempotency_key="expiry-test")
    assert run["status"] == "SUCCEEDED"
    seen: dict[str, int] = {}
    for collection, doc in _documents(settings):
        kind = collection.split("/")[-1]
        if kind not in EXPIRING:
            continue
        seen[kind] = seen.get(kind, 0) + 1
        assert EXPIRE_AT in doc, f"{collection} document without {EXPIRE_AT}: {doc}"
        at = datetime.fromisoformat(doc[EXPIRE_AT])
        retention = EXPIRING[kind]
        if retention is None:
            assert before < at < datetime.now(UTC) + timedelta(days=1, minutes=1)
        else:
            days = retention if isinstance(retention, float) else getattr(settings, f"{retention}_retention_days")
            assert before + timedelta(days=days) <= at <= datetime.now(UTC) + timedelta(days=days)
    assert set(seen) == set(EXPIRING), f"expected documents in every growing collection, saw {seen}"

    report = watchdog(runtime.context, now=datetime.now(UTC) + timedelta(days=settings.audit_retention_days + 1))
    # every expiring document goes: purged, or (a finished run's claims) deleted by the same pass before the purge
    assert report["expired_documents_purged"] >= sum(n for kind, n in seen.items() if kind != "claims")
    left = {collection.split("/")[-1] for collection, _ in _documents(settings)}
    assert not left & set(EXPIRING)
    assert "tenants" in left  # what does not expire stays


def test_retention_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "CLOUDACT_RUN_RETENTION_DAYS": "30",
            "CLOUDACT_AUDIT_RETENTION_DAYS": "730",
            "CLOUDACT_NOTIFICATION_RETENTION_DAYS": "7",
        }
    )
    assert (settings.run_retention_days, settings.audit_retention_days, settings.notification_retention_days) == (
        30,
        730,
        7,
    )
    assert (Settings().run_retention_days, Settings().audit_retention_days) == (400, 400)
