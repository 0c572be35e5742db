"""The process-wide bundle of adapters, built lazily from Settings.

Cloud clients are imported only when an adapter is first used, so a function that never touches BigQuery never pays
for importing it. The embedded runtime and tests install their own Context with `set_context`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from shared.ports.bus import MessageBus
from shared.ports.keys import KeyService
from shared.ports.state import StateStore
from shared.ports.warehouse import Warehouse
from shared.runtime.settings import Settings


@dataclass
class Context:
    settings: Settings
    _bus: MessageBus | None = None
    _state: StateStore | None = None
    _warehouse: Warehouse | None = None
    _keys: KeyService | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)
    extras: dict[str, Any] = field(default_factory=dict)
    """Per-process caches other packages keep alongside the adapters (e.g. which metadata tables exist)."""

    @property
    def bus(self) -> MessageBus:
        with self._lock:
            if self._bus is None:
                self._bus = build_bus(self.settings)
            return self._bus

    @property
    def state(self) -> StateStore:
        with self._lock:
            if self._state is None:
                self._state = build_state(self.settings)
            return self._state

    @property
    def warehouse(self) -> Warehouse:
        with self._lock:
            if self._warehouse is None:
                self._warehouse = build_warehouse(self.settings)
            return self._warehouse

    @property
    def keys(self) -> KeyService:
        with self._lock:
            if self._keys is None:
                self._keys = build_keys(self.settings)
            return self._keys

    def close(self) -> None:
        for adapter in (self._bus, self._state, self._warehouse):
            if adapter is not None:
                adapter.close()


def build_bus(settings: Settings) -> MessageBus:
    if settings.bus == "pubsub":
        from shared.adapters.pubsub_bus import PubSubBus

        return PubSubBus(settings.project)
    if settings.bus == "inprocess":
        raise RuntimeError("the in-process bus lives in the embedded runtime: use shared.runtime.embedded.start()")
    raise ValueError(f"unknown CLOUDACT_BUS {settings.bus!r} (pubsub | inprocess)")


def build_state(settings: Settings) -> StateStore:
    if settings.state == "firestore":
        from shared.adapters.firestore_state import FirestoreStateStore

        return FirestoreStateStore(settings.project, settings.firestore_database)
    if settings.state == "sqlite":
        from shared.adapters.sqlite_state import SqliteStateStore

        settings.home.mkdir(parents=True, exist_ok=True)
        return SqliteStateStore(settings.home / "state.sqlite3")
    raise ValueError(f"unknown CLOUDACT_STATE {settings.state!r} (firestore | sqlite)")


def build_warehouse(settings: Settings) -> Warehouse:
    if settings.warehouse == "bigquery":
        from shared.adapters.bigquery_warehouse import BigQueryWarehouse

        return BigQueryWarehouse(settings.project, settings.bigquery_endpoint, settings.bigquery_location)
    if settings.warehouse == "duckdb":
        from shared.adapters.duckdb_warehouse import DuckDBWarehouse

        settings.home.mkdir(parents=True, exist_ok=True)
        return DuckDBWarehouse(settings.home / "warehouse.duckdb")
    raise ValueError(f"unknown CLOUDACT_WAREHOUSE {settings.warehouse!r} (bigquery | duckdb)")


def build_keys(settings: Settings) -> KeyService:
    if settings.keys == "kms":
        from shared.adapters.kms_keys import CloudKmsKeys

        if not settings.kms_key:
            raise ValueError("CLOUDACT_KEYS=kms needs CLOUDACT_KMS_KEY (a CryptoKey resource name)")
        return CloudKmsKeys(settings.kms_key)
    if settings.keys == "local":
        from shared.adapters.local_keys import LocalKeyring

        return LocalKeyring(settings.home / "keyring.json")
    raise ValueError(f"unknown CLOUDACT_KEYS {settings.keys!r} (kms | local)")


_current: Context | None = None
_current_lock = threading.Lock()


def get_context() -> Context:
    global _current
    with _current_lock:
        if _current is None:
            _current = Context(Settings.from_env())
        return _current


def set_context(ctx: Context | None) -> Context | None:
    """Install `ctx` for this process; returns the previous one (tests restore it)."""
    global _current
    with _current_lock:
        previous, _current = _current, ctx
        return previous
