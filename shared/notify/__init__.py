"""Notifications: run/stage status events -> Slack and email alerts, per tenant, with an exactly-once effect.

The notifier function calls `deliver_event` for every status event. It records the event once (`events/{id}`),
finds the rules that match (tenant first, root where the tenant says nothing), renders one message and hands it to
`delivery.deliver` per (rule, channel), which deduplicates, cools down, retries and logs. `notify.*` pipeline steps
(`steps.py`) and operator alerts for dead-lettered events use the same channels and the same delivery log.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from shared import logs
from shared.clock import iso, utc_now
from shared.contracts.messages import StatusEvent
from shared.contracts.state_paths import run_path
from shared.errors import TransientError
from shared.notify.config import (
    Links,
    NotificationConfigError,
    RootNotifications,
    TenantNotifications,
    load_root,
    load_tenant,
)
from shared.notify.delivery import Delivery, Outcome, deliver, delivery_id, give_up_event, list_deliveries
from shared.notify.message import Message, event_message, inspect_lines
from shared.notify.routing import operator_channels, resolve_routes
from shared.ports.state import EXPIRE_AT, expires_in, set_fields_if
from shared.runtime.context import Context

__all__ = ["alert_dead_lettered_event", "alert_operators", "deliver_event", "list_deliveries"]
log = logs.get_logger(__name__)


def event_path(event_id: str) -> str:
    return "events/" + event_id.replace("/", ":")


def load_configs(config_dir: Path, tenant_id: str) -> tuple[TenantNotifications | None, RootNotifications, str | None]:
    """(tenant section, root config, problem). A broken file never silences alerts: the other one still routes."""
    problem = None
    try:
        root = load_root(config_dir)
    except NotificationConfigError as exc:
        log.error("root notifications config invalid, using defaults: %s", exc)
        root, problem = RootNotifications(), f"root notifications config is invalid: {exc.issues[0]}"
    try:
        tenant = load_tenant(config_dir, tenant_id)
    except NotificationConfigError as exc:
        log.error("tenant %s notifications config invalid, root rules apply: %s", tenant_id, exc)
        tenant, problem = None, f"tenant notifications config is invalid (root rules used): {exc.issues[0]}"
    return tenant, root, problem


def deliver_event(ctx: Context, event: StatusEvent) -> None:
    """Route and send one status event. Raises TransientError (nack) while a notification still needs a retry."""
    tenant, root, problem = load_configs(ctx.settings.config_dir, event.tenant_id)
    routes = resolve_routes(event.tenant_id, event.type, event.pipeline_id, tenant, root)
    path = event_path(event.event_id)
    received = {
        **event.model_dump(mode="json", exclude_none=True),
        "received_at": iso(utc_now()),
        EXPIRE_AT: expires_in(ctx.settings.notification_retention_days),  # Firestore TTL (shared.ports.state)
    }
    if not ctx.state.create(path, {**received, "notified": not routes}):  # no route: done in one write
        existing = ctx.state.get(path) or {}
        if existing.get("notified"):
            log.info("duplicate event %s dropped", event.event_id)
            return
    outcomes: list[Outcome] = []
    if routes:
        run = ctx.state.get(run_path(event.run_id)) if event.run_id else None
        if run is not None and run.get("tenant_id") != event.tenant_id:
            run = None
        message = event_message(event, run, root.links)
        if problem:
            message = message.with_note(problem)
        deadline = time.monotonic() + root.delivery.inline_wait_seconds
        for route in routes:
            d = Delivery(
                delivery_id=delivery_id(event.event_id, route.rule, route.channel.key),
                tenant_id=event.tenant_id,
                source="event",
                channel=route.channel,
                message=message,
                rule=route.rule,
                cooldown_seconds=route.cooldown_seconds,
                run_id=event.run_id or None,
                pipeline_id=event.pipeline_id or None,
                event_id=event.event_id,
                event_type=event.type,
            )
            outcomes.append(deliver(ctx, d, root, deadline))
    later = [o for o in outcomes if o.status == "later"]
    if later:
        raise TransientError(
            f"{len(later)} notification(s) of {event.event_id} to retry: {', '.join(o.delivery_id for o in later)}",
            retry_after_seconds=min(o.retry_after for o in later),
        )
    if routes:
        set_fields_if(
            ctx.state,
            path,
            {"notified": True, "deliveries": [o.delivery_id for o in outcomes]},
            lambda doc: not doc.get("notified"),
        )
    log.log(
        40 if event.type.endswith(("failed", "timed_out")) else 20,
        "%s %s%s: %s",
        event.type,
        event.run_id,
        f" stage={event.stage_id}" if event.stage_id else "",
        ", ".join(f"{o.delivery_id.rsplit('~', 1)[-1]} {o.status}" for o in outcomes) or "no rule matched",
        extra={"fields": {"event_type": event.type, "event_id": event.event_id, "error": event.error}},
    )


def alert_operators(
    ctx: Context, key: str, tenant_id: str, message: Message, run_id: str | None = None
) -> list[Outcome]:
    """Send `message` to the root config's operator channels, once per `key`."""
    try:
        root = load_root(ctx.settings.config_dir)
    except NotificationConfigError as exc:
        log.error("operator alert %s not sent: root notifications config invalid: %s", key, exc)
        return []
    targets = operator_channels(root)
    if not targets:
        log.error("operator alert %s not sent: no operator_alerts.channels in the root config: %s", key, message.title)
        return []
    deadline = time.monotonic() + root.delivery.inline_wait_seconds
    outcomes = [
        deliver(
            ctx,
            Delivery(delivery_id(key, "operator", t.key), tenant_id, "operator", t, message, run_id=run_id),
            root,
            deadline,
        )
        for t in targets
    ]
    later = [o for o in outcomes if o.status == "later"]
    if later:
        raise TransientError(f"operator alert {key}: {len(later)} channel(s) to retry", later[0].retry_after)
    return outcomes


def alert_dead_lettered_event(ctx: Context, payload: dict[str, Any], reason: str) -> str:
    """The notifier gave up on a status event: fail its pending notifications and tell the operators."""
    event_id = str(payload.get("event_id") or "unknown-event")
    tenant_id = str(payload.get("tenant_id") or "-")
    run_id = payload.get("run_id") if isinstance(payload.get("run_id"), str) else None
    given_up = give_up_event(ctx.state, event_id, f"notifier gave up: {reason}")
    root_links = _links(ctx)
    facts = [
        ("Tenant", tenant_id),
        ("Pipeline", str(payload.get("pipeline_id") or "-")),
        ("Run", run_id or "-"),
        ("Event", f"{payload.get('type', '?')} ({event_id})"),
        ("Notifications failed", str(given_up)),
    ]
    message = Message(
        title=f"notifier gave up on a {payload.get('type', 'status')} event of {tenant_id}",
        severity="error",
        headline=f"A status event was dead-lettered: {reason}. Its alerts may not have reached the tenant.",
        facts=tuple(facts),
        error=str(payload.get("error") or "") or None,
        inspect=(f"cloudact notifications list --run {run_id}", *inspect_lines(tenant_id, run_id, root_links))
        if run_id
        else ("cloudact notifications list",),
    )
    outcomes = alert_operators(ctx, delivery_id("dead-letter", event_id), tenant_id, message, run_id)
    return f"operator alert: {', '.join(o.status for o in outcomes) or 'no channel'}; {given_up} notification(s) failed"


def _links(ctx: Context) -> Links:
    try:
        return load_root(ctx.settings.config_dir).links
    except NotificationConfigError:
        return RootNotifications().links
