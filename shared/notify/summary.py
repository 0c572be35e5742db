"""One line for the end of `cloudact run` / `make demo`: where this run's notifications went."""

from __future__ import annotations

from shared.notify.delivery import list_deliveries
from shared.notify.outbox import display_path
from shared.runtime.context import Context


def run_notifications_line(ctx: Context, run_id: str) -> str:
    deliveries = sorted(list_deliveries(ctx, None, run_id), key=lambda d: str(d.get("created_at")))
    if not deliveries:
        return f"  notifications: none for this run (no rule matched; cloudact notifications list --run {run_id})"
    parts = []
    for d in deliveries:
        channel, status = d.get("channel"), d.get("status")
        if status == "sent" and d.get("outbox_path"):
            parts.append(f"{channel} -> local outbox {display_path(str(d['outbox_path']))}")
        elif status == "sent":
            parts.append(f"{channel} -> {d.get('target')}")
        else:
            parts.append(f"{channel} {status}: {str(d.get('error') or '')[:100]}")
    return f"  notifications: {'; '.join(parts)}   (cloudact notifications list --run {run_id})"
