"""The StateStore on Cloud Firestore (native mode), also used against the Firestore emulator.

Why these choices:

* google-cloud-firestore is imported inside the constructor: the import costs ~0.6 s, and functions that never touch
  Firestore (or run embedded) should not pay it on a cold start.
* The atomic primitives map to single-document, non-transactional writes: `create` -> `DocumentReference.create`,
  `update_if` -> `update` with a last-update-time precondition, `increment` -> `Increment` in a merge `set`. No
  transactions: hot-document transactions collapse under contention (pessimistic 2 s locks in the emulator).
* The version is the document's `update_time` as an RFC 3339 string with nanoseconds. Firestore assigns a fresh time
  to every write, so a version never matches a deleted-and-recreated document.
* `create`, `update_if` and `increment` are sent WITHOUT automatic retries: if a response is lost after the commit, a
  silent retry would report a claim we won as lost (AlreadyExists / FailedPrecondition) or count twice. The caller gets
  `TransientError` instead, its message is redelivered, and the handler re-reads state. Idempotent calls (get, set,
  delete, list) retry transient errors for up to 10 s. Every call has a 10 s RPC timeout.
* Transient gRPC errors (Unavailable, DeadlineExceeded, Aborted, ResourceExhausted, Internal) become
  `shared.errors.TransientError`; other Google API errors propagate unchanged (they are bugs or bad config).

The value and path rules (JSON-native values only; TypeError/ValueError otherwise) are the SQLite adapter's, shared so
that the two stores accept exactly the same documents: see `shared.adapters.sqlite_state`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from shared.errors import TransientError
from shared.ports.state import EXPIRE_AT, Doc, Filter, Versioned
from shared.ports.state_rules import (
    check_collection_path,
    check_doc,
    check_field_name,
    check_filter,
    check_query,
    check_value,
    field_segments,
    split_doc_path,
)

RPC_TIMEOUT_S = 10.0
"""Per-call deadline. Pub/Sub-triggered functions must fail fast and be redelivered rather than hang."""
RETRY_BUDGET_S = 10.0
"""Total time idempotent calls may spend retrying transient errors before raising TransientError."""

T = TypeVar("T")


class FirestoreStateStore:
    """StateStore on one Firestore database. Thread-safe: the client's gRPC channel is shared across threads."""

    def __init__(self, project: str, database: str = "(default)") -> None:
        """Connect lazily (no RPC here). Honours FIRESTORE_EMULATOR_HOST, like every google-cloud client."""
        from google.api_core import exceptions as gexc
        from google.api_core import retry as gretry
        from google.cloud import firestore
        from google.cloud.firestore_v1.base_query import FieldFilter
        from google.cloud.firestore_v1.field_path import FieldPath
        from proto.datetime_helpers import DatetimeWithNanoseconds

        transient = (
            gexc.ServiceUnavailable,
            gexc.DeadlineExceeded,
            gexc.Aborted,
            gexc.ResourceExhausted,
            gexc.InternalServerError,
        )
        self._transient: tuple[type[Exception], ...] = (*transient, gexc.RetryError)
        self._already_exists: type[Exception] = gexc.AlreadyExists
        self._precondition_failed: tuple[type[Exception], ...] = (gexc.FailedPrecondition, gexc.NotFound)
        self._retry: Any = gretry.Retry(
            predicate=gretry.if_exception_type(*transient),
            initial=0.1,
            maximum=1.0,
            multiplier=2.0,
            timeout=RETRY_BUDGET_S,
        )
        self._firestore: Any = firestore
        self._field_filter: Any = FieldFilter
        self._field_path: Any = FieldPath
        self._datetime_ns: Any = DatetimeWithNanoseconds
        self._client: Any = firestore.Client(project=project, database=database)

    # ------------------------------------------------------------------------------------------ helpers

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except self._transient as exc:
            raise TransientError(f"firestore {what} failed transiently: {exc}", retry_after_seconds=1.0) from exc

    def _doc(self, path: str) -> Any:
        split_doc_path(path)
        return self._client.document(path)

    def _api_path(self, segments: Sequence[str]) -> str:
        """Backtick-quote segments as needed, so `a-b` or `ü` are one field name and dots separate nested maps."""
        return str(self._field_path(*segments).to_api_repr())

    # ------------------------------------------------------------------------------------------ StateStore

    def get(self, path: str) -> Doc | None:
        ref = self._doc(path)
        snap = self._call("get", lambda: ref.get(retry=self._retry, timeout=RPC_TIMEOUT_S))
        if not snap.exists:
            return None
        return _as_read(snap.to_dict() or {})

    def get_versioned(self, path: str) -> Versioned | None:
        ref = self._doc(path)
        snap = self._call("get", lambda: ref.get(retry=self._retry, timeout=RPC_TIMEOUT_S))
        if not snap.exists:
            return None
        return Versioned(_as_read(snap.to_dict() or {}), str(snap.update_time.rfc3339()))

    def create(self, path: str, data: Doc) -> bool:
        ref = self._doc(path)
        check_doc(data)
        try:
            self._call("create", lambda: ref.create(_as_stored(data), retry=None, timeout=RPC_TIMEOUT_S))
        except self._already_exists:
            return False
        return True

    def set(self, path: str, data: Doc) -> None:
        ref = self._doc(path)
        check_doc(data)
        self._call("set", lambda: ref.set(_as_stored(data), retry=self._retry, timeout=RPC_TIMEOUT_S))

    def update_if(self, path: str, fields: Doc, version: str) -> bool:
        """`update()` reads keys as dotted field paths, so each top-level key is quoted into a one-segment path."""
        ref = self._doc(path)
        check_doc(fields)
        if not fields:
            raise ValueError("update_if needs at least one field (Firestore cannot apply an empty update)")
        try:
            last_update = self._datetime_ns.from_rfc3339(version)
        except (TypeError, ValueError):
            return False  # not a version this store ever issued
        option = self._client.write_option(last_update_time=last_update.timestamp_pb())
        updates = {self._api_path((key,)): value for key, value in _as_stored(fields).items()}
        try:
            self._call("update", lambda: ref.update(updates, option=option, retry=None, timeout=RPC_TIMEOUT_S))
        except self._precondition_failed:
            return False
        return True

    def increment(self, path: str, field: str, amount: int = 1, expire_at: str | None = None) -> int | float:
        """A merge `set` keeps keys literal (no dotted paths), so `field` is always one top-level field. The commit's
        transform result is the field's value right after this write."""
        ref = self._doc(path)
        check_field_name(field)
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError(f"increment amount must be an int, got {type(amount).__name__}")
        check_value(amount)
        payload = _as_stored(
            {field: self._firestore.Increment(amount), **({EXPIRE_AT: expire_at} if expire_at else {})}
        )
        result = self._call("increment", lambda: ref.set(payload, merge=True, retry=None, timeout=RPC_TIMEOUT_S))
        value = result.transform_results[0]._pb
        number: int | float = (
            value.double_value if value.WhichOneof("value_type") == "double_value" else value.integer_value
        )
        return number

    def delete(self, path: str) -> None:
        ref = self._doc(path)
        self._call("delete", lambda: ref.delete(retry=self._retry, timeout=RPC_TIMEOUT_S))

    def purge_expired(self, now: str) -> int:
        """Nothing to do: Firestore's TTL policies on `expire_at` delete expired documents (shared.ports.state)."""
        return 0

    def list(
        self,
        collection: str,
        filters: Sequence[Filter] = (),
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
    ) -> list[tuple[str, Doc]]:
        check_collection_path(collection)
        check_query(order_by, descending, limit)
        if limit == 0:
            return []
        query: Any = self._client.collection(collection)
        for flt in filters:
            check_filter(flt)
            value = list(flt.value) if flt.op == "in" else flt.value
            field_filter = self._field_filter(self._api_path(field_segments(flt.field)), flt.op, value)
            query = query.where(filter=field_filter)
        if order_by is not None:
            direction = self._firestore.Query.DESCENDING if descending else self._firestore.Query.ASCENDING
            query = query.order_by(self._api_path(field_segments(order_by)), direction=direction)
        if limit is not None:
            query = query.limit(limit)

        def run() -> list[tuple[str, Doc]]:
            snaps = query.stream(retry=self._retry, timeout=RPC_TIMEOUT_S)
            return [(snap.id, _as_read(snap.to_dict() or {})) for snap in snaps]

        return self._call("list", run)

    def close(self) -> None:
        self._client.close()


def _as_stored(data: Doc) -> Doc:
    """`expire_at` as a Timestamp, the only type a TTL policy acts on (shared.ports.state); the rest unchanged."""
    value = data.get(EXPIRE_AT)
    if not isinstance(value, str):
        return data
    return {**data, EXPIRE_AT: datetime.fromisoformat(value)}


def _as_read(data: Doc) -> Doc:
    """`expire_at` back as the ISO string it was written as: callers see JSON-native values only."""
    value = data.get(EXPIRE_AT)
    if not isinstance(value, datetime):
        return data
    return {**data, EXPIRE_AT: value.astimezone(UTC).isoformat(timespec="microseconds")}
