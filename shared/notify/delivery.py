"""One notification on one channel, sent with an exactly-once effect under at-least-once delivery.

Every notification has a deterministic id (event id + rule + channel, or run + step + channel) and one document,
`notifications/{delivery_id}`, which is both the claim and the delivery log entry:

- `create()` claims it; a duplicate event finds the document and, once it is final (sent / failed / suppressed),
  does nothing. While another invocation holds the lease, the duplicate is handed back to Pub/Sub for later.
- A per-rule cooldown (`notification_cooldowns/{tenant}~{rule}~{pipeline}~{event type}~{channel}`) is taken with a
  compare-and-set, so of two concurrent repeats exactly one is sent and the other is logged as `suppressed`.
- Transient channel errors are retried with exponential backoff (honouring Retry-After) inside the invocation while
  the wait is short; a longer wait is recorded (`retrying`, `not_before`) and the event is nacked so Pub/Sub retries.
  After `delivery.max_attempts`, or at once for a permanent error, the delivery is `failed` with its error.

The one window left: a crash after the channel accepted but before `sent` is written. The lease then expires and the
message is sent again - at least once, never lost. Slack webhooks offer no idempotency key; for email the
deterministic Message-ID lets mail systems drop the repeat.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from shared import logs
from shared.clock import iso, parse_iso, utc_now
from shared.errors import TransientError
from shared.notify.channels import Envelope, send
from shared.notify.config import RootNotifications
from shared.notify.errors import ChannelError
from shared.notify.message import Message
from shared.notify.routing import ChannelTarget
from shared.ports.state import EXPIRE_AT, Doc, Filter, StateStore, expires_in, set_fields_if
from shared.runtime.context import Context

log = logs.get_logger(__name__)
COLLECTION = "notifications"
COOLDOWNS = "notification_cooldowns"
FINAL = frozenset({"sent", "failed", "suppressed"})
_CAS_RETRIES = 25
_TEXT_LIMIT = 4000

Source = Literal["event", "step", "operator", "test"]
Status = Literal["sent", "failed", "suppressed", "duplicate", "later"]


def delivery_id(*parts: str) -> str:
    """A document id made of readable parts (Firestore ids cannot contain '/')."""
    return "~".join(p.replace("/", ":") for p in parts)


def delivery_path(did: str) -> str:
    return f"{COLLECTION}/{did}"


@dataclass(frozen=True)
class Delivery:
    delivery_id: str
    tenant_id: str
    source: Source
    channel: ChannelTarget
    message: Message
    rule: str | None = None
    cooldown_seconds: float = 0.0
    run_id: str | None = None
    pipeline_id: str | None = None
    event_id: str | None = None
    event_type: str | None = None

    def cooldown_path(self) -> str:
        parts = (self.tenant_id, self.rule or "-", self.pipeline_id or "-", self.event_type or "-", self.channel.key)
        return f"{COOLDOWNS}/{delivery_id(*parts)}"

    def log_fields(self) -> Doc:
        return {
            "delivery_id": self.delivery_id,
            "tenant_id": self.tenant_id,
            "run_id": self.run_id,
            "pipeline_id": self.pipeline_id,
            "source": self.source,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "rule": self.rule,
            "channel": self.channel.key,
            "channel_type": self.channel.type,
            "severity": self.message.severity,
            "subject": self.message.subject,
            "text": self.message.to_text()[:_TEXT_LIMIT],
        }


@dataclass(frozen=True)
class Outcome:
    status: Status
    delivery_id: str
    retry_after: float = 0.0
    doc: Doc = field(default_factory=dict)


def deliver(ctx: Context, d: Delivery, root: RootNotifications, deadline: float) -> Outcome:
    """Send `d` unless it was already handled; `deadline` (time.monotonic()) bounds waiting between attempts."""
    store = ctx.state
    policy = root.delivery
    path = delivery_path(d.delivery_id)
    token = secrets.token_hex(8)
    lease_s = policy.inline_wait_seconds + 3 * policy.timeout_seconds + 30
    claimed = _claim(store, path, d, token, lease_s, expires_in(ctx.settings.notification_retention_days))
    if isinstance(claimed, Outcome):
        return claimed
    message = d.message
    if d.cooldown_seconds > 0:
        held, previous = _hold_cooldown(store, d.cooldown_path(), d.delivery_id, d.cooldown_seconds)
        if not held:
            reason = (
                f"cooldown: rule {d.rule} already notified {d.channel.key} about {d.tenant_id}/{d.pipeline_id} "
                f"({d.event_type}) at {str(previous.get('since'))[:19]}Z; "
                f"quiet until {str(previous.get('until'))[:19]}Z"
            )
            _finish(store, path, token, {"status": "suppressed", "error": reason})
            log.info("notification %s suppressed: %s", d.delivery_id, reason)
            return Outcome("suppressed", d.delivery_id)
        if previous.get("suppressed"):
            message = message.with_note(
                f"{previous['suppressed']} similar notification(s) were suppressed by the "
                f"{d.cooldown_seconds / 60:g} min cooldown since {str(previous.get('since'))[:19]}Z."
            )
    attempts = int(claimed.get("attempts") or 0)
    envelope = Envelope(d.delivery_id, str(claimed["created_at"]), d.tenant_id)
    while True:
        attempts += 1
        try:
            result = send(ctx, d.channel, message, envelope, root)
        except ChannelError as exc:
            if not exc.transient or attempts >= policy.max_attempts:
                error = str(exc) if not exc.transient else f"gave up after {attempts} attempt(s); last error: {exc}"
                _finish(store, path, token, {"status": "failed", "attempts": attempts, "error": error})
                if d.cooldown_seconds > 0:
                    _release_cooldown(store, d.cooldown_path(), d.delivery_id)
                log.error("notification %s failed: %s", d.delivery_id, error)
                return Outcome("failed", d.delivery_id)
            wait = exc.retry_after if exc.retry_after is not None else policy.backoff(attempts)
            progress = {"status": "retrying", "attempts": attempts, "error": str(exc)}
            if time.monotonic() + wait <= deadline:
                renewed = {**progress, "lease_until": iso(utc_now() + timedelta(seconds=lease_s + wait))}
                set_fields_if(store, path, renewed, lambda doc: doc.get("lease_owner") == token)
                log.warning(
                    "notification %s attempt %d failed, retrying in %.2fs: %s", d.delivery_id, attempts, wait, exc
                )
                time.sleep(wait)
                continue
            not_before = iso(utc_now() + timedelta(seconds=wait))
            _finish(store, path, token, {**progress, "not_before": not_before})
            log.warning("notification %s attempt %d failed, retry after %.1fs: %s", d.delivery_id, attempts, wait, exc)
            return Outcome("later", d.delivery_id, retry_after=wait)
        sent: Doc = {
            "status": "sent",
            "attempts": attempts,
            "error": None,
            "sent_at": iso(utc_now()),
            "transport": result.transport,
            "target": result.target,
            "note": result.note or None,
            "outbox_path": result.outbox_path,
        }
        if message is not d.message:
            sent["text"] = message.to_text()[:_TEXT_LIMIT]
        _finish(store, path, token, sent)
        log.info("notification %s sent: %s", d.delivery_id, result.target)
        return Outcome("sent", d.delivery_id)


def _claim(store: StateStore, path: str, d: Delivery, token: str, lease_s: float, expire_at: str) -> Doc | Outcome:
    """The delivery document under this invocation's lease, or the Outcome that says why not. A new document carries
    `expire_at` (Firestore TTL: the delivery log is kept notification_retention_days)."""
    now = utc_now()
    lease = {"lease_owner": token, "lease_until": iso(now + timedelta(seconds=lease_s)), "updated_at": iso(now)}
    doc: Doc = {**d.log_fields(), "status": "queued", "attempts": 0, "created_at": iso(now), **lease}
    doc[EXPIRE_AT] = expire_at
    for _ in range(_CAS_RETRIES):
        if store.create(path, doc):
            return doc
        current = store.get_versioned(path)
        if current is None:
            continue
        data = current.data
        if data.get("status") in FINAL:
            return Outcome("duplicate", d.delivery_id, doc=data)
        for field_name in ("lease_until", "not_before"):
            if data.get(field_name) and now < parse_iso(data[field_name]):
                left = (parse_iso(data[field_name]) - now).total_seconds()
                return Outcome("later", d.delivery_id, retry_after=min(left, 10.0), doc=data)
        if store.update_if(path, lease, current.version):
            return {**data, **lease}
    raise TransientError(f"{path}: too much contention claiming the notification", 1.0)


def _finish(store: StateStore, path: str, token: str, fields: Doc) -> None:
    update = {**fields, "lease_owner": None, "lease_until": None, "updated_at": iso(utc_now())}
    if not set_fields_if(store, path, update, lambda doc: doc.get("lease_owner") == token):
        log.warning("%s: lease lost before recording %s (another invocation took over)", path, fields.get("status"))


def _hold_cooldown(store: StateStore, path: str, holder: str, seconds: float) -> tuple[bool, Doc]:
    """(True, previous window) when `holder` may send now; (False, current window) while another send is cooling."""
    for _ in range(_CAS_RETRIES):
        now = utc_now()
        window = {"holder": holder, "since": iso(now), "until": iso(now + timedelta(seconds=seconds)), "suppressed": 0}
        current = store.get_versioned(path)
        if current is None:
            if store.create(path, window):
                return True, {}
            continue
        data = current.data
        if data.get("holder") == holder:  # our own window: a retry of the same notification
            return True, {}
        if now < parse_iso(str(data["until"])):
            store.increment(path, "suppressed")
            return False, data
        if store.update_if(path, window, current.version):
            return True, data
    raise TransientError(f"{path}: too much contention on the cooldown", 1.0)


def _release_cooldown(store: StateStore, path: str, holder: str) -> None:
    """A failed send must not silence the next alert."""
    set_fields_if(store, path, {"until": iso(utc_now())}, lambda doc: doc.get("holder") == holder)


def give_up_event(store: StateStore, event_id: str, reason: str) -> int:
    """Mark every unfinished notification of an event failed (its message was dead-lettered); returns how many."""
    count = 0
    for did, doc in store.list(COLLECTION, [Filter("event_id", "==", event_id)]):
        if doc.get("status") in FINAL:
            continue
        fields = {"status": "failed", "error": reason, "lease_owner": None, "lease_until": None}
        if set_fields_if(store, delivery_path(did), fields, lambda d: d.get("status") not in FINAL):
            count += 1
    return count


def public_delivery(doc: Doc) -> Doc:
    """The log entry without lease fields, with `label`: QUEUED for a message only written to the local outbox."""
    from shared.notify.outbox import delivery_label

    return {**{k: v for k, v in doc.items() if k not in ("lease_owner", "lease_until")}, "label": delivery_label(doc)}


def list_deliveries(
    ctx: Context,
    tenant_id: str | None,
    run_id: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The delivery log, newest first: one entry per notification (queued / retrying / sent / failed / suppressed).

    `tenant_id=None` lists every tenant's (operators and the local CLI only; the API always passes the tenant).
    """
    filters = [Filter("tenant_id", "==", tenant_id)] if tenant_id else []
    if run_id:
        filters.append(Filter("run_id", "==", run_id))
    if status:
        filters.append(Filter("status", "==", status))
    if run_id:  # a run has a handful: no ordered index needed
        docs = [doc for _, doc in ctx.state.list(COLLECTION, filters)]
        docs.sort(key=lambda doc: str(doc.get("created_at")), reverse=True)
        docs = docs[:limit]
    else:
        docs = [doc for _, doc in ctx.state.list(COLLECTION, filters, "created_at", True, limit)]
    return [public_delivery(doc) for doc in docs]
