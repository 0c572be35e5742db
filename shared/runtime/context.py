"""The process-wide bundle of adapters, built lazily from Settings.

Cloud clients are imported only when an adapter is first used, so a function that never touches BigQuery never pays
for importing it. The embedded runtime and tests install their own Context with `set_context`.

There is no process-wide warehouse: `warehouse_for(tenant_id)` hands out one tenant's warehouse (locally its own DuckDB
file), so no handle reaches every tenant's data. Code that truly needs several tenants iterates them explicitly.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from shared.ports.bus import MessageBus
from shared.ports.keys import KeyService
from shared.ports.state import StateStore
from shared.ports.warehouse import Warehouse
from shared.runtime.caches import InstanceCaches
from shared.runtime.settings import Settings


@dataclass
class Context:
    settings: Settings
    _bus: MessageBus | None = None
    _state: StateStore | None = None
    _warehouses: dict[str, Warehouse] = field(default_factory=dict)
    _keys: KeyService | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)
    caches: InstanceCaches = field(default_factory=InstanceCaches, repr=False)
    """What this instance keeps beside the adapters: document caches, resolved credentials, its rate limiter."""

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

    def warehouse_for(self, tenant_id: str) -> Warehouse:
        """Tenant `tenant_id`'s warehouse, opened once per process and shared by its steps (closed by `close`)."""
        with self._lock:
            warehouse = self._warehouses.get(tenant_id)
            if warehouse is None:
                warehouse = self._warehouses[tenant_id] = build_warehouse(self.settings, tenant_id)
            return warehouse

    @property
    def keys(self) -> KeyService:
        with self._lock:
            if self._keys is None:
                self._keys = build_keys(self.settings)
            return self._keys

    def close(self) -> None:
        with self._lock:
            warehouses, self._warehouses = list(self._warehouses.values()), {}
        for warehouse in warehouses:
            warehouse.close()
        for adapter in (self._bus, self._state):
            if adapter is not None:
                adapter.close()


def build_bus(settings: Settings) -> MessageBus:
    if settings.bus == "pubsub":
        from shared.adapters.pubsub_bus import PubSubBus

        return PubSubBus(settings.project)
    if settings.bus == "inprocess":
        raise RuntimeError("the in-process bus lives in the embedded runtime: use shared.app.embedded.start()")
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


# The tenant id rule of shared.tenancy.tenants.TENANT_ID, checked again here because the id becomes a file name: a
# caller that skipped onboarding's check must still not reach outside the warehouse folder ('..', '/', NUL, newline).
_SAFE_TENANT_ID = re.compile(r"[a-z][a-z0-9_]{2,49}")


def _checked_tenant_id(tenant_id: str) -> str:
    if not isinstance(tenant_id, str) or not _SAFE_TENANT_ID.fullmatch(tenant_id):
        raise ValueError(f"invalid tenant id {tenant_id!r}: no warehouse can be opened for it")
    return tenant_id


def tenant_warehouse_path(settings: Settings, tenant_id: str) -> Path:
    """The embedded warehouse file holding only `tenant_id`'s datasets: `{home}/warehouse/{tenant_id}.duckdb`."""
    return settings.home / "warehouse" / f"{_checked_tenant_id(tenant_id)}.duckdb"


def build_warehouse(settings: Settings, tenant_id: str) -> Warehouse:
    """One tenant's warehouse. Locally: a DuckDB file of its own, so its SQL cannot name another tenant's data."""
    if settings.warehouse == "bigquery":
        from shared.adapters.bigquery_warehouse import BigQueryWarehouse
        from shared.adapters.gcp_identity import tenant_credentials

        # On GCP the client acts as the tenant's own service account (impersonated; the function's identity holds
        # only Token Creator on it), so BigQuery IAM itself keeps the tenant inside its datasets. The emulators check
        # no identity: there tenant_credentials is None and isolation rests on the SQL allow-list.
        return BigQueryWarehouse(
            settings.project,
            settings.bigquery_endpoint,
            settings.bigquery_location,
            credentials=tenant_credentials(settings, _checked_tenant_id(tenant_id)),
            tenant_id=tenant_id,
        )
    if settings.warehouse == "duckdb":
        from shared.adapters.duckdb_warehouse import DuckDBWarehouse

        return DuckDBWarehouse(tenant_warehouse_path(settings, tenant_id))
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
