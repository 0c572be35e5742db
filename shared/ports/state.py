"""The state store port: a small document store (Firestore semantics) for live run state, tenants and claims.

Paths alternate collection/document like Firestore: `runs/{run_id}`, `runs/{run_id}/stages/{stage_id}`.
The only atomic primitives are `create` (fails when the document exists: claims and idempotency keys),
`update_if` (compare-and-set on the version of a document: guarded state transitions) and `increment`.
Hot-document transactions are avoided on purpose (see the Firestore emulator's contention collapse).

Expiry: a document of a collection that grows forever carries `expire_at` (EXPIRE_AT), written as an ISO-8601 UTC
string like every time (`expires_in`). Firestore's TTL policies (declared in Terraform on that field name) delete only
documents whose field holds a Timestamp, so the Firestore adapter stores this one top-level field as a Timestamp and
reads it back as the same string (https://cloud.google.com/firestore/docs/ttl#ttl_policies). TTL deletion is not
instant (typically within 24 h of the time): readers must not rely on an expired document being gone. The SQLite
adapter deletes expired documents in `purge_expired` (the embedded maintenance tick calls it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from shared.clock import utc_now
from shared.errors import TransientError

Doc = dict[str, Any]
FilterOp = Literal["==", "!=", "<", "<=", ">", ">=", "in"]
EXPIRE_AT = "expire_at"
"""The field Firestore's TTL policies watch (terraform/modules/platform: one policy per growing collection)."""


def expires_in(days: float, now: datetime | None = None) -> str:
    """`expire_at` for a document to be deleted `days` after `now` (UTC, ISO-8601, microseconds: strings of this form
    order like the times they name, which `purge_expired` relies on)."""
    at = (now or utc_now()).astimezone(UTC) + timedelta(days=days)
    return at.isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Versioned:
    data: Doc
    version: str


@dataclass(frozen=True)
class Filter:
    field: str
    op: FilterOp
    value: Any


class StateStore(Protocol):
    def get(self, path: str) -> Doc | None: ...

    def get_versioned(self, path: str) -> Versioned | None: ...

    def create(self, path: str, data: Doc) -> bool:
        """Write `data` only if no document exists at `path`. False when it already exists."""
        ...

    def set(self, path: str, data: Doc) -> None:
        """Replace the whole document."""
        ...

    def update_if(self, path: str, fields: Doc, version: str) -> bool:
        """Merge top-level `fields` only if the document is still at `version`. False when it changed or vanished."""
        ...

    def increment(self, path: str, field: str, amount: int = 1, expire_at: str | None = None) -> int | float:
        """Atomically add `amount` to a numeric field, creating the document/field as needed. Returns the field's
        value right after this write (so concurrent callers each see a distinct count: a position, not a guess).
        `expire_at` (given the same on every call for one document) is written in the same write."""
        ...

    def delete(self, path: str) -> None: ...

    def purge_expired(self, now: str) -> int:
        """Delete documents whose `expire_at` is before `now` (an `expires_in`-style string); returns how many. A
        store with TTL of its own (Firestore) deletes nothing here: its TTL policies do it."""
        ...

    def list(
        self,
        collection: str,
        filters: Sequence[Filter] = (),
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
    ) -> list[tuple[str, Doc]]:
        """Documents directly in `collection` as `(id, data)`, filtered with AND semantics."""
        ...

    def close(self) -> None: ...


CAS_RETRIES = 25
"""How often a compare-and-set re-reads and retries before calling the document too contended (TransientError)."""


def set_fields_if(store: StateStore, path: str, fields: Doc, condition: Callable[[Doc], bool]) -> bool:
    """Merge non-status `fields` with a compare-and-set, only while `condition(doc)` holds. False if it does not."""
    for _ in range(CAS_RETRIES):
        current = store.get_versioned(path)
        if current is None or not condition(current.data):
            return False
        if store.update_if(path, fields, current.version):
            return True
    raise TransientError(f"{path}: too much contention setting {sorted(fields)}")
