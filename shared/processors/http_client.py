"""The HTTP side of `http.extract`: one JSON request with rate limiting, retries and a guarded destination.

Retries: connection errors, 429 and 5xx are retried with exponential backoff; a `Retry-After` header (seconds or an
HTTP date) is honoured as the minimum wait. When the wait would pass `max_backoff_seconds` or the step's deadline,
the request gives up with a TransientError carrying the wait, so the step itself is retried later. Other 4xx are
terminal: a bad token or URL does not get better by asking again.

Destination guard (egress_guard): every request resolves its host once, refuses non-public addresses, and connects
to the checked addresses themselves (`_PinnedHTTPConnection`), so a DNS answer that changes between the check and
the connect (rebinding) cannot move the request. The host name is kept for the Host header and for TLS (SNI and
certificate verification). Environment proxies are not used: a proxy would resolve the name again, unchecked.

Redirects: GET requests follow up to MAX_REDIRECTS hops by hand, each hop checked like the first (so a redirect to
the metadata server or a private address is refused), never from https down to http; credentials (Authorization,
Cookie and the step's auth header) are dropped once a hop leaves the first URL's origin, as browsers and curl do.
Following them keeps APIs that move their endpoints working; checking each hop keeps them from pointing inside.
POST redirects are refused: re-sending a body somewhere else is not something a pipeline should do silently.
"""

from __future__ import annotations

import email.message
import email.utils
import http.client
import json
import random
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from shared.clock import utc_now
from shared.errors import TerminalError, TransientError
from shared.processors.egress_guard import CheckedUrl, EgressPolicy, Resolver, check_destination, system_resolver

MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_ALWAYS_SENSITIVE = frozenset({"authorization", "proxy-authorization", "cookie"})
_TLS = ssl.create_default_context()


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


def _pinned_connector(addresses: tuple[str, ...]) -> Callable[..., socket.socket]:
    """Stands in for socket.create_connection: the (name, port) it is given is ignored except for the port, and the
    connection goes to the checked addresses in order (the next one only when one cannot be reached)."""

    def connect(
        address: tuple[str, int], timeout: float | None = None, source_address: tuple[str, int] | None = None
    ) -> socket.socket:
        problem: OSError | None = None
        for ip in addresses:
            try:
                return socket.create_connection((ip, address[1]), timeout, source_address)
            except OSError as exc:
                problem = exc
        raise problem or OSError("no address to connect to")

    return connect


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, checked: CheckedUrl, timeout: float) -> None:
        super().__init__(checked.host, checked.port, timeout=timeout)
        # http.client's own seam for opening the socket (connect() calls it with (host, port)); HTTPS then wraps
        # the socket with server_hostname=host, so certificates are still verified for the name.
        self._create_connection = _pinned_connector(checked.addresses)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, checked: CheckedUrl, timeout: float) -> None:
        super().__init__(checked.host, checked.port, timeout=timeout, context=_TLS)
        self._create_connection = _pinned_connector(checked.addresses)


def send_pinned(
    method: str, checked: CheckedUrl, headers: Mapping[str, str], data: bytes | None, timeout: float
) -> tuple[int, email.message.Message, bytes]:
    """One request to the checked addresses: (status, headers, body)."""
    kind = _PinnedHTTPSConnection if checked.scheme == "https" else _PinnedHTTPConnection
    connection = kind(checked, timeout)
    try:
        connection.request(method, checked.target, body=data, headers=dict(headers))
        reply = connection.getresponse()
        return int(reply.status), reply.headers, reply.read()
    finally:
        connection.close()


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
    return max(0.0, (when - utc_now()).total_seconds())


@dataclass
class JsonClient:
    retries: RetryPolicy
    limiter: RateLimiter
    timeout_seconds: float
    seconds_left: Callable[[], float]
    policy: EgressPolicy
    redact: tuple[str, ...] = ()
    sensitive_headers: frozenset[str] = frozenset()
    """Header names (lower case) carrying credentials, dropped when a redirect leaves the first URL's origin."""
    resolve: Resolver = field(default=system_resolver)
    requests_sent: int = 0
    retried: int = 0
    redirects_followed: int = 0

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
            except ssl.SSLCertVerificationError as exc:  # retrying cannot fix a certificate
                raise TerminalError(f"{method} {self._clean(url)}: TLS certificate refused: {exc}") from exc
            except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, refused connections
                self._pause(attempt, None, f"{method} {self._clean(url)}: {exc}")
                continue
            if status == 429 or status >= 500:
                wait = retry_after_seconds(reply_headers.get("Retry-After"))
                self._pause(attempt, wait, f"{method} {self._clean(url)}: HTTP {status} {self._snippet(payload)}")
                continue
            if 300 <= status < 400:
                raise TerminalError(f"{method} {self._clean(url)}: HTTP {status} without a usable Location")
            if status >= 400:
                raise TerminalError(f"{method} {self._clean(url)}: HTTP {status} {self._snippet(payload)}")
            try:
                return json.loads(payload), len(payload)
            except json.JSONDecodeError as exc:
                raise TerminalError(f"{method} {self._clean(url)}: the response is not JSON: {exc}") from exc

    def _send(self, method: str, url: str, headers: dict[str, str], data: bytes | None) -> tuple[int, Any, bytes]:
        """One attempt: the request, and for GET the redirects it leads to, every hop checked and pinned."""
        first_origin: tuple[str, str, int] | None = None
        current, arrived_by = url, ""
        for hop in range(MAX_REDIRECTS + 1):
            try:
                checked = check_destination(current, self.policy, self.resolve)
            except TerminalError as exc:
                if not arrived_by:
                    raise
                raise TerminalError(f"{arrived_by}{exc}") from exc  # say which redirect led there
            first_origin = first_origin or checked.origin
            if checked.origin != first_origin:
                sensitive = _ALWAYS_SENSITIVE | self.sensitive_headers
                headers = {k: v for k, v in headers.items() if k.lower() not in sensitive}
            timeout = max(0.1, min(self.timeout_seconds, self.seconds_left()))
            status, reply_headers, payload = send_pinned(method, checked, headers, data, timeout)
            location = reply_headers.get("Location")
            if status not in _REDIRECT_STATUSES or not location:
                return status, reply_headers, payload
            following = urllib.parse.urljoin(current, location.strip())
            where = f"{method} {self._clean(current)}: HTTP {status} redirect to {self._clean(following)}"
            if method != "GET":
                raise TerminalError(f"{where} refused: only GET follows redirects (use the final URL)")
            if hop == MAX_REDIRECTS:
                raise TerminalError(f"{where}: more than {MAX_REDIRECTS} redirects, refused")
            if checked.scheme == "https" and not following.lower().startswith("https://"):
                raise TerminalError(f"{where} refused: https may not redirect to {following.split(':')[0]}")
            self.redirects_followed += 1
            current, arrived_by = following, f"{where}: "
        raise AssertionError("unreachable: the loop returns or raises")

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
