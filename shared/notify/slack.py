"""Slack incoming webhooks: a Block Kit payload, and one POST whose outcome is classified for retry.

The webhook URL is a tenant secret and is never logged or stored; only its host appears in the delivery log. A URL must
be https to a host the root config allows (default hooks.slack.com), so a tenant cannot point the platform's
notifier at internal addresses; plain http is accepted only for loopback hosts (local sinks and tests).
Redirects are not followed.
"""

from __future__ import annotations

import fnmatch
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from shared.clock import utc_now
from shared.notify.config import SEVERITY_RANK, SlackChannel
from shared.notify.errors import ChannelError
from shared.notify.message import Message, _clip

_EMOJI = {"error": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_USER_AGENT = "cloudact-notifier/1"


def mrkdwn_escape(text: str) -> str:
    """Slack treats &, < and > as control characters in mrkdwn."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mention_token(mention: str) -> str:
    bare = mention.lstrip("@")
    if mention.startswith("<"):
        return mention
    if bare in ("here", "channel", "everyone"):
        return f"<!{bare}>"
    if bare.startswith("S"):
        return f"<!subteam^{bare}>"
    return f"<@{bare}>"


def slack_payload(message: Message, channel: SlackChannel) -> dict[str, Any]:
    mentions = ""
    if channel.mentions and SEVERITY_RANK[message.severity] >= SEVERITY_RANK[channel.mention_min_severity]:
        mentions = " ".join(mention_token(m) for m in channel.mentions) + " "
    header = f"{_EMOJI[message.severity]} {message.title}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header[:150], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": mentions + mrkdwn_escape(message.headline)}},
    ]
    if message.body:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn_escape(message.body)[:3000]}})
    if message.facts:
        fields = [
            {"type": "mrkdwn", "text": f"*{mrkdwn_escape(label)}*\n{mrkdwn_escape(value)}"[:2000]}
            for label, value in message.facts[:10]
        ]
        blocks.append({"type": "section", "fields": fields})
    if message.error:
        error = mrkdwn_escape(_clip(message.error)).replace("```", "'''")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Error*\n```{error}```"}})
    context = [f"`{mrkdwn_escape(line)}`" for line in message.inspect] + [mrkdwn_escape(n) for n in message.notes]
    if context:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": t[:3000]} for t in context]})
    return {"text": f"{mentions}{mrkdwn_escape(message.subject)}", "blocks": blocks}


def check_webhook_url(url: str, allowed_hosts: Sequence[str]) -> str:
    """The webhook's host if the URL may be used; a permanent ChannelError (naming no secret part) if not."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
    except ValueError:
        raise ChannelError("the Slack webhook secret is not a URL", transient=False) from None
    if parts.scheme not in ("https", "http") or not host:
        raise ChannelError("the Slack webhook secret is not an http(s) URL", transient=False)
    if parts.scheme == "http" and host not in _LOOPBACK:
        raise ChannelError(f"refusing plain http to {host}: Slack webhooks must be https", transient=False)
    if not any(fnmatch.fnmatchcase(host, pattern.lower()) for pattern in allowed_hosts):
        raise ChannelError(
            f"webhook host {host} is not in the root config's slack.allowed_hosts ({', '.join(allowed_hosts)})",
            transient=False,
        )
    return host


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx surfaces as an HTTPError: a moved webhook is a configuration problem


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - utc_now()).total_seconds())


def post_webhook(url: str, payload: dict[str, Any], host: str, timeout: float) -> str:
    """POST the payload; returns Slack's answer text. ChannelError(transient=...) on failure."""
    handlers: list[Any] = [_NoRedirect()]
    if host in _LOOPBACK:
        handlers.append(urllib.request.ProxyHandler({}))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(
        url.strip(),
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": _USER_AGENT},
        method="POST",
    )
    try:
        with opener.open(request, timeout=timeout) as response:
            return str(response.read(200).decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        body = exc.read(200).decode("utf-8", "replace").strip() if exc.fp else ""
        status = exc.code
        text = f"Slack answered HTTP {status}" + (f": {body}" if body else "")
        if status == 429:
            retry_after = retry_after_seconds(exc.headers.get("Retry-After"))
            raise ChannelError(text, transient=True, retry_after=retry_after) from None
        raise ChannelError(text, transient=status >= 500 or status == 408) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if "CERTIFICATE_VERIFY_FAILED" in str(reason):
            raise ChannelError(f"TLS certificate of {host} not trusted: {reason}", transient=False) from None
        raise ChannelError(f"cannot reach {host}: {reason}", transient=True) from None
    except (TimeoutError, ConnectionError, OSError) as exc:
        raise ChannelError(f"cannot reach {host}: {type(exc).__name__}: {exc}", transient=True) from None
