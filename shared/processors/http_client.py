"""The HTTP side of `http.extract`: one JSON request with rate limiting, retries and a guarded destination.

Retries: connection errors, 429 and 5xx are retried with exponential backoff; a `Retry-After` header (seconds or an
HTTP date) is honoured as the minimum wait. When the wait would pass `max_backoff_seconds` or the step's deadline,
the request gives up with a TransientError carrying the wait, so the step itself is retried later. Other 4xx are
terminal: a bad token or URL does not get better by asking again.

Destination guard: http/https only, no redirects (a redirect could point anywhere), and the host must not resolve to
a link-local address (the cloud metadata server hands out credentials) or, on the `gcp` runtime, to a private or
loopback address. Local runtimes allow private addresses so tests and development can talk to local servers.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import random
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.errors import TerminalError, TransientError


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0


class RateLimiter:
    """At most `per_second` requests per second, spaced evenly (the simplest limit an API's quota respects)."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / per_second
        self._clock = clock
        self._next = 0.0

    def wait(self) -> None:
        now = self._clock()
        if now < self._next:
            time.sleep(self._next - now)
            now = self._next
        self._next = now + self._interval


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx is then raised as an HTTPError and refused below


_OPENER = urllib.request.build_opener(_NoRedirect)


def check_destination(url: str, allow_private: bool) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TerminalError(f"url {url!r}: only http(s)://host/... URLs are allowed")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except socket.gaierror as exc:
        raise TransientError(f"cannot resolve {parts.hostname!r}: {exc}") from exc
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address.is_link_local or address.is_multicast or address.is_unspecified:
            raise TerminalError(f"url host {parts.hostname!r} resolves to {address}: refused (link-local/metadata)")
        if not allow_private and (address.is_private or address.is_loopback or address.is_reserved):
            raise TerminalError(f"url host {parts.hostname!r} resolves to private address {address}: refused")


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After: 3` or `Retry-After: Wed, 21 Oct 2026 07:28:00 GMT` -> seconds to wait (None if absent/bad)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@dataclass
class JsonClient:
    retries: RetryPolicy
    limiter: RateLimiter
    timeout_seconds: float
    seconds_left: Callable[[], float]
    redact: tuple[str, ...] = ()
    requests_sent: int = 0
    retried: int = 0

    def request(self, method: str, url: str, headers: Mapping[str, str], body: Any | None = None) -> tuple[Any, int]:
        """The decoded JSON body and the byte count of one request, after retries."""
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"Accept": "application/json", "User-Agent": "cloudact-http-extract/1", **headers}
        if data is not None:
            all_headers.setdefault("Content-Type", "application/json")
        attempt = 0
        while True:
            attempt += 1
            self.limiter.wait()
            self.requests_sent += 1
            try:
                status, reply_headers, payload = self._send(method, url, all_headers, data)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                self._pause(attempt, None, f"{method} {self._clean(url)}: {exc}")
                continue
            if status == 429 or status >= 500:
                wait = retry_after_seconds(reply_headers.get("Retry-After"))
                self._pause(attempt, wait, f"{method} {self._clean(url)}: HTTP {status} {self._snippet(payload)}")
                continue
            if 300 <= status < 400:
                raise TerminalError(f"{method} {self._clean(url)}: HTTP {status} redirect refused (use the final URL)")
            if status >= 400:
                raise TerminalError(f"{method} {self._clean(url)}: HTTP {status} {self._snippet(payload)}")
            try:
                return json.loads(payload), len(payload)
            except json.JSONDecodeError as exc:
                raise TerminalError(f"{method} {self._clean(url)}: the response is not JSON: {exc}") from exc

    def _send(self, method: str, url: str, headers: dict[str, str], data: bytes | None) -> tuple[int, Any, bytes]:
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        timeout = max(0.1, min(self.timeout_seconds, self.seconds_left()))
        try:
            with _OPENER.open(req, timeout=timeout) as reply:
                return int(reply.status), reply.headers, reply.read()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.headers, exc.read() if exc.fp else b""

    def _pause(self, attempt: int, retry_after: float | None, problem: str) -> None:
        """Sleep before the next attempt, or give up (TransientError) when attempts or time run out."""
        policy = self.retries
        backoff = min(policy.max_backoff_seconds, policy.backoff_seconds * 2 ** (attempt - 1))
        delay = max(backoff * random.uniform(0.8, 1.0), retry_after or 0.0)
        out_of_attempts = attempt >= policy.max_attempts
        too_long = delay > policy.max_backoff_seconds or delay >= self.seconds_left()
        if out_of_attempts or too_long:
            why = f"after {attempt} attempt(s)" if out_of_attempts else f"(next wait {delay:.1f}s is too long)"
            raise TransientError(f"giving up {why}: {problem}", retry_after_seconds=retry_after)
        self.retried += 1
        time.sleep(delay)

    def _clean(self, text: str) -> str:
        for secret in self.redact:
            if secret:
                text = text.replace(secret, "***")
        return text

    def _snippet(self, payload: bytes) -> str:
        return self._clean(payload[:300].decode("utf-8", "replace")).strip()
