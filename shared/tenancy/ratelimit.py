"""Request rate limits: per tenant (shared by every API instance, in the state store) and global (per instance).

Per tenant: a fixed one-minute window counted with the state store's atomic `increment`, then read back. Every
request is counted, so the count read back is at least this request's position in the window: a request is refused
when that count exceeds the limit. Two racing requests can both see a count past the limit when only one of them was,
so the limiter may refuse slightly early under a burst, never late.

Global: an in-memory window per API instance (no state write), guarding an instance against floods of any traffic,
unauthenticated included. The platform-wide ceiling is this times the function's max instances.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass

from shared.errors import TooManyRequests
from shared.runtime.context import Context

WINDOW_S = 60
GLOBAL_RPM_ENV = "CLOUDACT_GLOBAL_REQUESTS_PER_MINUTE"
DEFAULT_GLOBAL_RPM = 60_000


@dataclass(frozen=True)
class RateWindow:
    limit: int
    remaining: int
    reset_s: int

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_s),
        }


class RateLimited(TooManyRequests):
    def __init__(self, message: str, window: RateWindow, scope: str) -> None:
        super().__init__(message, max(1, window.reset_s), {"limit": window.limit, "scope": scope})
        self.window = window


def _window(now: float) -> tuple[int, int]:
    index = int(now // WINDOW_S)
    reset = math.ceil((index + 1) * WINDOW_S - now)
    return index, max(1, reset)


def check_tenant_rate(ctx: Context, tenant_id: str, limit: int, now: float | None = None) -> RateWindow:
    """Count this request in the tenant's current window; 429 when it is past `limit`."""
    index, reset = _window(time.time() if now is None else now)
    path = f"ratelimits/{tenant_id}:{index}"
    ctx.state.increment(path, "count")
    count = int((ctx.state.get(path) or {}).get("count", 0))
    window = RateWindow(limit, max(0, limit - count), reset)
    if count > limit:
        raise RateLimited(f"tenant {tenant_id!r} is over {limit} requests per minute", window, "tenant")
    return window


class GlobalLimiter:
    """Per-instance fixed window over all requests."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._index = -1
        self._count = 0

    def check(self, now: float | None = None) -> None:
        index, reset = _window(time.time() if now is None else now)
        with self._lock:
            if index != self._index:
                self._index, self._count = index, 0
            self._count += 1
            count = self._count
        if count > self.limit:
            window = RateWindow(self.limit, 0, reset)
            raise RateLimited("the API is over its global request rate; retry later", window, "global")


def global_limiter(ctx: Context) -> GlobalLimiter:
    limiter = ctx.extras.get("global_limiter")
    if limiter is None:
        limit = int(os.environ.get(GLOBAL_RPM_ENV, DEFAULT_GLOBAL_RPM))
        limiter = ctx.extras.setdefault("global_limiter", GlobalLimiter(limit))
    assert isinstance(limiter, GlobalLimiter)
    return limiter
