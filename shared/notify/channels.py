"""Send one rendered message on one channel: resolve its secrets, pick the transport, say where it went.

When a channel is not configured for real (its webhook URL or SMTP password secret is not set, or there is no SMTP
relay at all), the embedded runtime writes the message to the local outbox instead, so `make demo` on a fresh clone
shows what would have been sent. Every other runtime records that as a permanent failure: production never pretends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from shared.errors import TerminalError, TransientError
from shared.notify.config import EmailChannel, OutboxChannel, RootNotifications, SlackChannel, SmtpServer
from shared.notify.errors import ChannelError
from shared.notify.mail import build_email, send_email
from shared.notify.message import Message
from shared.notify.outbox import write_outbox
from shared.notify.routing import ChannelTarget
from shared.notify.slack import check_webhook_url, post_webhook, slack_payload
from shared.runtime.context import Context
from shared.secrets.store import get_secret, secret_path

Transport = Literal["slack", "email", "outbox"]
_OUTBOX_SENDER = "cloudact notifications <cloudact@localhost>"


@dataclass(frozen=True)
class SendResult:
    transport: Transport
    target: str
    """Where it went, without secrets: `slack hooks.slack.com`, `email a@x via smtp:587`, `local outbox`."""
    note: str = ""
    outbox_path: str | None = None


@dataclass(frozen=True)
class Envelope:
    """What a channel needs besides the message: ids that make the send idempotent and the outbox file stable."""

    delivery_id: str
    created_at: str
    tenant_id: str


def send(
    ctx: Context, target: ChannelTarget, message: Message, envelope: Envelope, root: RootNotifications
) -> SendResult:
    timeout = root.delivery.timeout_seconds
    config = target.config
    if isinstance(config, SlackChannel):
        url = _secret(ctx, target.secrets_owner, config.webhook_secret)
        payload = slack_payload(message, config)
        if url is None:
            return _fallback(ctx, target, envelope, "json", _json({"payload": payload}), _missing(target, config))
        host = check_webhook_url(url, root.slack.allowed_hosts)
        answer = post_webhook(url, payload, host, timeout).strip()
        return SendResult("slack", f"slack {host}", "" if answer == "ok" else f"Slack answered {answer!r}")
    if isinstance(config, EmailChannel):
        return _send_email(ctx, target, config, message, envelope, timeout)
    if isinstance(config, OutboxChannel):
        return _fallback(ctx, target, envelope, "txt", message.to_text().encode(), None)
    raise ChannelError(f"unknown channel type {type(config).__name__}", transient=False)


def _send_email(
    ctx: Context, target: ChannelTarget, config: EmailChannel, message: Message, envelope: Envelope, timeout: float
) -> SendResult:
    server: SmtpServer | None = target.smtp
    if server is None:
        mail = build_email(message, _OUTBOX_SENDER, config.to, envelope.delivery_id)
        reason = "no SMTP relay configured (smtp: in the root notifications.yaml or the tenant's)"
        return _fallback(ctx, target, envelope, "eml", mail.as_bytes(), reason)
    mail = build_email(message, server.sender, config.to, envelope.delivery_id)
    password = None
    if server.password_secret:
        password = _secret(ctx, target.smtp_secrets_owner, server.password_secret)
        if password is None:
            reason = f"SMTP password secret {server.password_secret!r} of {target.smtp_secrets_owner} is not set"
            return _fallback(ctx, target, envelope, "eml", mail.as_bytes(), reason)
    note = send_email(mail, server, password, min(timeout, server.timeout_seconds))
    return SendResult("email", f"email {', '.join(config.to)} via {server.host}:{server.port}", note)


def _missing(target: ChannelTarget, config: SlackChannel) -> str:
    return f"Slack webhook secret {config.webhook_secret!r} of {target.secrets_owner} is not set"


def _json(data: object) -> bytes:
    return (json.dumps(data, indent=2) + "\n").encode()


def _secret(ctx: Context, owner: str, name: str) -> str | None:
    """The secret's text, or None when it was never set."""
    if ctx.state.get(secret_path(owner, name)) is None:
        return None
    try:
        return get_secret(ctx, owner, name).decode("utf-8").strip()
    except TransientError as exc:
        raise ChannelError(f"cannot open secret {name!r}: {exc}", True, exc.retry_after_seconds) from None
    except TerminalError as exc:
        raise ChannelError(f"cannot open secret {name!r}: {exc}", False) from None


def _fallback(
    ctx: Context, target: ChannelTarget, envelope: Envelope, ext: str, data: bytes, reason: str | None
) -> SendResult:
    """The local outbox: on purpose for an `outbox` channel, instead of an unconfigured channel on embedded."""
    if reason is not None and ctx.settings.runtime != "embedded":
        raise ChannelError(reason, transient=False)
    if ctx.settings.runtime != "embedded":  # an `outbox` channel in the cloud: the delivery log keeps the text
        return SendResult("outbox", "outbox (delivery log only)")
    path = write_outbox(
        ctx.settings, envelope.delivery_id, envelope.created_at, envelope.tenant_id, target.key, ext, data
    )
    note = f"{reason}; written to the local outbox instead" if reason else ""
    return SendResult("outbox", "local outbox", note, str(path))
