"""The embedded runtime's StateStore: one SQLite file (or ":memory:") behaving like the Firestore adapter.

Why SQLite: the embedded runtime needs atomic `create`/`update_if`/`increment` shared by many worker threads, and
readable by a second process (the CLI) while workers write. One connection per store, guarded by a lock, in WAL mode
gives exactly that with no server. The table is WITHOUT ROWID, clustered on its (collection, id) key: a write changes
one B-tree page instead of the table's and its key index's (2 WAL frames, not 4), and a get walks one tree. Warm costs
on this project's 2-core VMs: get ~8 us, create ~30 us (was ~10 and ~40 with a rowid table); an existing database
keeps the layout it was made with, which only costs that difference.

Value contract (both adapters enforce it, so code that passes here also passes on Firestore): documents hold JSON-native
values only: str, int (64-bit), float (finite), bool, None, list, and dict with non-empty string keys that are not
`__reserved__`. Anything else (datetime, bytes, tuple, set, Decimal...) raises TypeError; a bad key, an out-of-range
int or a NaN raises ValueError. Store datetimes as ISO-8601 strings. The rule helpers below are shared with
`firestore_state`.

Query semantics follow Firestore: comparisons only match values of the same type (numbers compare across int/float),
`!=` and `order_by` skip documents where the field is missing, `!=` also skips nulls, `in` cannot match None. Results
are ordered by `order_by`, then by any field with an inequality filter, then by document id, all in one direction;
`descending` needs `order_by`. Filter and order fields are dot-separated paths into nested maps.

Versions are opaque strings. Here a version is an integer bumped by every write, but a newly created document starts
at a random 62-bit value, so a version read before a delete never matches the document re-created at the same path
(no ABA on claims that are released and re-taken).
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from shared.errors import TransientError
from shared.ports.state import EXPIRE_AT, Doc, Filter, Versioned
from shared.ports.state_rules import (
    INEQUALITY_OPS,
    check_collection_path,
    check_doc,
    check_field_name,
    check_filter,
    check_query,
    check_value,
    field_segments,
    split_doc_path,
)

# ---------------------------------------------------------------------------------------------- SQLite adapter

_SCHEMA = """CREATE TABLE IF NOT EXISTS docs (
    collection TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (collection, id)
) WITHOUT ROWID"""
# Firestore's cross-type order: null < booleans < numbers < strings < arrays < maps.
_TYPE_RANK = (
    "CASE json_type(data, ?) WHEN 'null' THEN 0 WHEN 'false' THEN 1 WHEN 'true' THEN 1 WHEN 'integer' THEN 2 "
    "WHEN 'real' THEN 2 WHEN 'text' THEN 3 WHEN 'array' THEN 4 ELSE 5 END"
)


# ensure_ascii=False: SQLite's JSON paths match keys as stored, so "ü" must not become "\u00fc". One shared encoder:
# json.dumps with options builds a new one per call, which costs more than the encoding itself for small documents.
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _paths(expiry: tuple[str, ...]) -> tuple[str, ...]:
    """The (json path, value) pair of `expire_at` for json_set, from its (key, value) pair for json_object."""
    return (_json_path((expiry[0],)), expiry[1]) if expiry else ()


def _json_path(segments: Sequence[str]) -> str:
    return "$" + "".join(f'."{s}"' for s in segments)


def _json_types(value: Any) -> tuple[str, ...]:
    if isinstance(value, bool):
        return ("true", "false")
    if isinstance(value, (int, float)):
        return ("integer", "real")
    return ("text",)


_versions = random.Random(os.urandom(32))
"""Seeded from the OS once per process: a version start needs to be unlikely to repeat, not unpredictable, and a
getrandom() call per write (releasing the GIL) cost more than the INSERT's Python side."""


def _new_version() -> int:
    """A random start in [0, 2**62): far from any other incarnation's versions, with room to bump forever."""
    return _versions.getrandbits(62)


class _Guard:
    """Hold the connection lock for one operation and turn lock contention into TransientError (retry later)."""

    __slots__ = ("_lock",)

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lock.release()
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise TransientError(f"sqlite state store busy: {exc}", retry_after_seconds=1.0) from exc


class _WriteGuard(_Guard):
    """`_Guard` for writes: for a database file, writers also queue on an exclusive flock() of `<file>.writer-lock`,
    taken before the connection lock so readers never wait behind a writer that waits for another process.

    Why: processes that write the same file (the embedded runtime's schedule-tick workers, shared/app/tick_workers.py)
    otherwise meet on SQLite's own write lock, whose busy handler sleeps 1, 2, 5, 10... ms before retrying; a blocked
    flock() wakes as soon as the holder releases. Measured with two processes admitting 4,000 schedule ticks each on
    one file: 6,849 busy sleeps per 4,000 ticks and 1.27x one process's rate, against 1.48x with this lock. A flock
    is held per open file, not per thread, so this process's writers take turns on `_writers` first. Reads need no
    lock (WAL readers never wait for writers). Costs two system calls per write."""

    __slots__ = ("_fd", "_writers")

    def __init__(self, lock: threading.Lock, lock_file: str | None) -> None:
        super().__init__(lock)
        self._writers = threading.Lock()
        self._fd = -1 if lock_file is None else os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def __enter__(self) -> None:
        self._writers.acquire()
        try:
            if self._fd >= 0:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            self._lock.acquire()
        except BaseException:
            if self._fd >= 0:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._writers.release()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            super().__exit__(exc_type, exc, tb)  # releases the connection lock (and maps a busy error)
        finally:
            if self._fd >= 0:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._writers.release()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class SqliteStateStore:
    """StateStore over one SQLite database: a single `docs` table keyed by (collection, id), data as JSON text."""

    def __init__(self, path: str | Path) -> None:
        """Open (creating if needed) the database at `path`; ":memory:" gives a private in-memory store."""
        target = str(path)
        if target != ":memory:":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit, so every statement is its own atomic transaction and no write transaction
        # is ever left open (which would block the CLI and other processes).
        self._conn = sqlite3.connect(
            target, timeout=5.0, isolation_level=None, check_same_thread=False, cached_statements=256
        )
        lock = threading.Lock()
        self._guard = _Guard(lock)
        self._write_guard = _WriteGuard(lock, None if target == ":memory:" else f"{target}.writer-lock")
        with self._write_guard:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            # Checkpoint every ~40 MB of WAL instead of SQLite's ~4 MB: each checkpoint copies pages back and fsyncs
            # in whichever write triggers it, and at the default a burst of writes stalled every ~200 schedule ticks
            # (P6, 10,000 ticks, 3 runs each: 8.3-8.5 s against 8.8-10.6 s). A process crash loses nothing either
            # way (the WAL is in the OS's hands at commit); a power loss can roll back what was committed since the
            # last checkpoint (synchronous=NORMAL), now up to ~40 MB of it. The WAL file is cut back to 64 MB after.
            self._conn.execute("PRAGMA wal_autocheckpoint=10000")
            self._conn.execute("PRAGMA journal_size_limit=67108864")
            self._conn.execute("PRAGMA busy_timeout=5000")
            self._conn.execute(_SCHEMA)

    def get(self, path: str) -> Doc | None:
        collection, doc_id = split_doc_path(path)
        with self._guard:
            row = self._conn.execute(
                "SELECT data FROM docs WHERE collection = ? AND id = ?", (collection, doc_id)
            ).fetchone()
        data: Doc | None = None if row is None else json.loads(row[0])
        return data

    def get_versioned(self, path: str) -> Versioned | None:
        collection, doc_id = split_doc_path(path)
        with self._guard:
            row = self._conn.execute(
                "SELECT data, version FROM docs WHERE collection = ? AND id = ?", (collection, doc_id)
            ).fetchone()
        return None if row is None else Versioned(json.loads(row[0]), str(row[1]))

    def create(self, path: str, data: Doc) -> bool:
        """INSERT ... DO NOTHING: the primary key makes it atomic across threads and processes, without the cost of
        raising and catching IntegrityError on every lost race."""
        collection, doc_id = split_doc_path(path)
        check_doc(data)
        text = _dumps(data)
        with self._write_guard:
            cur = self._conn.execute(
                "INSERT INTO docs (collection, id, data, version) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (collection, doc_id, text, _new_version()),
            )
            return cur.rowcount == 1

    def set(self, path: str, data: Doc) -> None:
        collection, doc_id = split_doc_path(path)
        check_doc(data)
        text = _dumps(data)
        with self._write_guard:
            self._conn.execute(
                "INSERT INTO docs (collection, id, data, version) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (collection, id) DO UPDATE SET data = excluded.data, version = docs.version + 1",
                (collection, doc_id, text, _new_version()),
            )

    def update_if(self, path: str, fields: Doc, version: str) -> bool:
        """Merge in Python, then write with `WHERE version = ?`: the UPDATE itself is the compare-and-set.

        Merging in Python (not json_set) keeps any top-level key addressable, dots and quotes included.
        """
        collection, doc_id = split_doc_path(path)
        check_doc(fields)
        if not fields:
            raise ValueError("update_if needs at least one field (Firestore cannot apply an empty update)")
        try:
            expected = int(version)
        except (TypeError, ValueError):
            return False  # not a version this store ever issued
        with self._write_guard:
            row = self._conn.execute(
                "SELECT data FROM docs WHERE collection = ? AND id = ? AND version = ?", (collection, doc_id, expected)
            ).fetchone()
            if row is None:
                return False
            merged = json.loads(row[0])
            merged.update(fields)
            cur = self._conn.execute(
                "UPDATE docs SET data = ?, version = version + 1 WHERE collection = ? AND id = ? AND version = ?",
                (_dumps(merged), collection, doc_id, expected),
            )
            return cur.rowcount == 1

    def increment(self, path: str, field: str, amount: int = 1, expire_at: str | None = None) -> int | float:
        """One upsert statement, RETURNING the new value. Like Firestore's Increment, a missing or non-numeric field
        starts from 0."""
        collection, doc_id = split_doc_path(path)
        check_field_name(field)
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError(f"increment amount must be an int, got {type(amount).__name__}")
        check_value(amount)
        p = _json_path((field,))
        expiry = (EXPIRE_AT, expire_at) if expire_at is not None else ()  # one more key of json_object / json_set
        marks = ", ?, ?" if expiry else ""
        with self._write_guard:
            row = self._conn.execute(
                f"INSERT INTO docs (collection, id, data, version) VALUES (?, ?, json_object(?, ?{marks}), ?) "
                "ON CONFLICT (collection, id) DO UPDATE SET version = docs.version + 1, data = json_set(docs.data, ?, "
                "CASE WHEN json_type(docs.data, ?) IN ('integer', 'real') THEN json_extract(docs.data, ?) ELSE 0 END"
                f" + ?{marks}) RETURNING json_extract(data, ?)",
                (collection, doc_id, field, amount, *expiry, _new_version(), p, p, p, amount, *_paths(expiry), p),
            ).fetchone()
        value: int | float = row[0]
        return value

    def delete(self, path: str) -> None:
        collection, doc_id = split_doc_path(path)
        with self._write_guard:
            self._conn.execute("DELETE FROM docs WHERE collection = ? AND id = ?", (collection, doc_id))

    def purge_expired(self, now: str) -> int:
        """Delete every document whose `expire_at` string sorts before `now` (same format: see `expires_in`). A full
        scan of one table; the embedded maintenance tick runs it, not the hot path."""
        with self._write_guard:
            cur = self._conn.execute(
                "DELETE FROM docs WHERE json_type(data, '$.expire_at') = 'text' "
                "AND json_extract(data, '$.expire_at') < ?",
                (now,),
            )
            return int(cur.rowcount)

    def list(
        self,
        collection: str,
        filters: Sequence[Filter] = (),
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
    ) -> list[tuple[str, Doc]]:
        """Filters, order and limit run in SQL with json_extract, typed and ordered like Firestore.

        Like Firestore, fields with inequality filters are implicitly ordered on (after `order_by`, in the same
        direction), and document id breaks the remaining ties.
        """
        check_collection_path(collection)
        check_query(order_by, descending, limit)
        where = ["collection = ?"]
        params: list[Any] = [collection]
        for flt in filters:
            check_filter(flt)
            sql, args = _filter_sql(flt)
            where.append(sql)
            params.extend(args)
        direction = "DESC" if descending else "ASC"
        order_fields = [] if order_by is None else [order_by]
        inequality = {flt.field for flt in filters if flt.op in INEQUALITY_OPS} - set(order_fields)
        order_fields.extend(sorted(inequality, key=field_segments))
        order_sql, order_params = [], []
        for p in (_json_path(field_segments(name)) for name in order_fields):
            where.append("json_type(data, ?) IS NOT NULL")  # ordering on a field skips documents without it
            params.append(p)
            order_sql.append(f"{_TYPE_RANK} {direction}, json_extract(data, ?) {direction}")
            order_params += [p, p]
        order_sql.append(f"id {direction}")
        sql = f"SELECT id, data FROM docs WHERE {' AND '.join(where)} ORDER BY {', '.join(order_sql)}"
        params += order_params
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._guard:
            rows = self._conn.execute(sql, params).fetchall()
        return [(row[0], json.loads(row[1])) for row in rows]

    def close(self) -> None:
        with self._guard:
            self._conn.close()
            self._write_guard.close()


def _filter_sql(flt: Filter) -> tuple[str, list[Any]]:
    """One Firestore-typed predicate: a value only matches values of its own JSON type (ints and floats are one)."""
    p = _json_path(field_segments(flt.field))
    if flt.value is None:
        # == None matches explicit nulls; != None matches any present, non-null value.
        return ("json_type(data, ?) = 'null'" if flt.op == "==" else "json_type(data, ?) != 'null'"), [p]
    if flt.op == "in":
        parts, params = [], []
        for v in flt.value:
            sql, args = _typed_compare(p, "=", v)
            parts.append(sql)
            params.extend(args)
        return f"({' OR '.join(parts)})", params
    if flt.op == "!=":
        sql, args = _typed_compare(p, "=", flt.value)
        # A missing field gives json_type NULL, so the whole predicate is NULL: skipped, like Firestore.
        return f"(json_type(data, ?) != 'null' AND NOT {sql})", [p, *args]
    return _typed_compare(p, "=" if flt.op == "==" else flt.op, flt.value)


def _typed_compare(p: str, op: str, value: Any) -> tuple[str, list[Any]]:
    types = _json_types(value)
    marks = ", ".join("?" * len(types))
    return f"(json_type(data, ?) IN ({marks}) AND json_extract(data, ?) {op} ?)", [p, *types, p, value]
