"""One line for the end of `cloudact run` / `make demo`: where this run's notifications went."""

from __future__ import annotations

from typing import Any

from shared.notify.delivery import COLLECTION, public_delivery
from shared.notify.outbox import delivery_label, display_path
from shared.ports.state import Filter, StateStore
from shared.runtime.context import Context


def run_deliveries(state: StateStore, run_id: str) -> list[dict[str, Any]]:
    """A run's delivery log entries, oldest first (a run has a handful: no ordered index needed)."""
    docs = [public_delivery(doc) for _, doc in state.list(COLLECTION, [Filter("run_id", "==", run_id)])]
    return sorted(docs, key=lambda d: str(d.get("created_at")))


def run_notifications_line(ctx: Context, run_id: str) -> str:
    return deliveries_line(ctx.state, run_id)


def deliveries_line(state: StateStore, run_id: str) -> str:
    deliveries = run_deliveries(state, run_id)
    if not deliveries:
        return f"  notifications: none for this run (no rule matched; cloudact notifications list --run {run_id})"
    parts = []
    for d in deliveries:
        channel, label = d.get("channel"), delivery_label(d)
        if d.get("status") == "sent" and d.get("outbox_path"):
            parts.append(f"{channel} {label} in the local outbox {display_path(str(d['outbox_path']))}")
        elif label == "SENT":
            parts.append(f"{channel} SENT to {d.get('target')}")
        else:
            parts.append(f"{channel} {label}: {str(d.get('error') or '')[:100]}")
    return f"  notifications: {'; '.join(parts)}   (cloudact notifications list --run {run_id})"
