"""Request rate limits: per tenant (shared by every API instance, in the state store) and global (per instance).

Per tenant: fixed one-minute windows, each split over shard documents `ratelimits/{tenant}:{minute}:{shard}` so no
document takes more than ~1 write/s (Firestore's sustained rate per document): a limit of L requests per minute gets
max(1, L // SHARD_RPM) shards (at most MAX_SHARDS), shard i allowing its share `L // n + (i < L % n)`. A request is
counted on a random shard with the store's atomic `increment`, which returns the request's position in that shard:
it is allowed when the position is within the shard's share, else a second random shard is tried, else it is
refused. Positions are distinct and counts only grow, so allowed requests never pass the sum of the shares, L: the
limiter is never late. It may refuse a little early near the end of a busy window, when both shards drawn are spent
while others are not (with one shard, limits under 2 x SHARD_RPM, it is exact). One write per request, no read.
`X-RateLimit-Remaining` is the drawn shard's remaining share times the shard count.

Global: an in-memory window per API instance (no state write), guarding an instance against floods of any traffic,
unauthenticated included. The platform-wide ceiling is this times the function's max instances.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.clock import utc_now
from shared.errors import TooManyRequests
from shared.ports.state import expires_in
from shared.runtime.caches import RequestLimiter
from shared.runtime.context import Context

WINDOW_S = 60
SHARD_RPM = 60
"""Requests per minute one shard document takes at most: ~1 write/s."""
MAX_SHARDS = 256
PROBES = 2
"""Shards tried before a request is refused."""


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


def shard_count(limit: int) -> int:
    return max(1, min(MAX_SHARDS, limit // SHARD_RPM))


def shard_share(limit: int, shards: int, index: int) -> int:
    return limit // shards + (1 if index < limit % shards else 0)


def check_tenant_rate(ctx: Context, tenant_id: str, limit: int, now: float | None = None) -> RateWindow:
    """Count this request in the tenant's current window; 429 when it is past `limit`."""
    index, reset = _window(utc_now().timestamp() if now is None else now)
    shards = shard_count(limit)
    # A day after its window ends, Firestore's TTL deletes the shard (the same value on every write of the window).
    expire_at = expires_in(1, datetime.fromtimestamp((index + 1) * WINDOW_S, UTC))
    for shard in random.sample(range(shards), min(PROBES, shards)):
        path = f"ratelimits/{tenant_id}:{index}:{shard}"
        count = int(ctx.state.increment(path, "count", expire_at=expire_at))
        share = shard_share(limit, shards, shard)
        if count <= share:
            return RateWindow(limit, min(limit, (share - count) * shards), reset)
    window = RateWindow(limit, 0, reset)
    raise RateLimited(f"tenant {tenant_id!r} is over {limit} requests per minute", window, "tenant")


class GlobalLimiter:
    """Per-instance fixed window over all requests."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._index = -1
        self._count = 0

    def check(self, now: float | None = None) -> None:
        index, reset = _window(utc_now().timestamp() if now is None else now)
        with self._lock:
            if index != self._index:
                self._index, self._count = index, 0
            self._count += 1
            count = self._count
        if count > self.limit:
            window = RateWindow(self.limit, 0, reset)
            raise RateLimited("the API is over its global request rate; retry later", window, "global")


def global_limiter(ctx: Context) -> RequestLimiter:
    """The instance's limiter, at `Settings.global_requests_per_minute` (CLOUDACT_GLOBAL_REQUESTS_PER_MINUTE)."""
    caches = ctx.caches
    with caches.lock:
        if caches.global_limiter is None:
            caches.global_limiter = GlobalLimiter(ctx.settings.global_requests_per_minute)
        return caches.global_limiter
