"""What one function instance keeps beside its adapters: caches of state documents, resolved credentials, the
per-instance rate limiter and which metadata tables it has already checked.

Each field is built on first use by the module that owns it (shared/tenancy, shared/metadata_tables), under `lock`,
so construction stays with the code that knows the TTLs and limits. The fields are typed by the small protocols
below rather than by those classes: this package sits under tenancy in the layers and cannot import them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol


class DocumentCache(Protocol):
    """Copies of state documents by key, expiring after a TTL (shared.tenancy.cache.TtlCache)."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, value: dict[str, Any]) -> None: ...

    def drop(self, key: str) -> None: ...

    def clear(self) -> None: ...


class RequestLimiter(Protocol):
    """Refuses a request past the instance's rate (shared.tenancy.ratelimit.GlobalLimiter)."""

    def check(self, now: float | None = None) -> None: ...


@dataclass
class InstanceCaches:
    api_keys: DocumentCache | None = None
    """API-key documents by key id (shared/tenancy/apikeys.py, KEY_CACHE_TTL_S)."""
    tenants: DocumentCache | None = None
    """Tenant documents for per-request checks (shared/tenancy/tenants.py, TENANT_CACHE_TTL_S)."""
    global_limiter: RequestLimiter | None = None
    """The instance's window over all requests (Settings.global_requests_per_minute)."""
    api_key_pepper: bytes | None = field(default=None, repr=False)
    """The resolved pepper: one KMS decrypt per cold start."""
    admin_token_digest: bytes | None = field(default=None, repr=False)
    """SHA-256 of the resolved admin credential."""
    metadata_tables: set[str] = field(default_factory=set)
    """Tenants whose `{tenant}_metadata` tables this instance has checked or created."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    """Held while a field is built, so two threads never build two limiters or caches."""
