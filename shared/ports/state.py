"""The state store port: a small document store (Firestore semantics) for live run state, tenants and claims.

Paths alternate collection/document like Firestore: `runs/{run_id}`, `runs/{run_id}/stages/{stage_id}`.
The only atomic primitives are `create` (fails when the document exists: claims and idempotency keys),
`update_if` (compare-and-set on the version of a document: guarded state transitions) and `increment`.
Hot-document transactions are avoided on purpose (see the Firestore emulator's contention collapse).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Doc = dict[str, Any]
FilterOp = Literal["==", "!=", "<", "<=", ">", ">=", "in"]


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

    def increment(self, path: str, field: str, amount: int = 1) -> int | float:
        """Atomically add `amount` to a numeric field, creating the document/field as needed. Returns the field's
        value right after this write (so concurrent callers each see a distinct count: a position, not a guess)."""
        ...

    def delete(self, path: str) -> None: ...

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
