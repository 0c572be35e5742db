"""A drill ground: the embedded runtime (every function, in-process bus, SQLite, DuckDB) over a temporary folder, with
the `relyco` tenant onboarded unthrottled and its pipelines from reliability/tenant_configs/.

Everything goes through the real `api` entry point and the real function entry points; faults are injected only at
the seams a real outage hits (see reliability/faults.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.tenants import onboard, onboard_unthrottled

TENANT = "relyco"
CONFIGS = Path(__file__).resolve().parent / "tenant_configs"
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED", "SKIPPED"})
"""Terminal statuses of runs and stages (shared.contracts.states.TERMINAL; SKIPPED is a stage's only)."""


@dataclass
class Drill:
    runtime: Any
    headers: dict[str, str]
    home: Path
    """The runtime's folder: SQLite state, DuckDB warehouse, local keyring (deleted when the drill ends)."""
    closed: bool = False

    def close(self) -> None:
        """Stop the runtime now (flushes the state and warehouse files, e.g. to scan them); idempotent."""
        if not self.closed:
            self.closed = True
            self.runtime.close()

    @property
    def state(self) -> Any:
        return self.runtime.context.state

    @property
    def warehouse(self) -> Any:
        """The drill tenant's warehouse (each tenant has its own)."""
        return self.runtime.context.warehouse_for(TENANT)

    @property
    def bus(self) -> Any:
        return self.runtime.bus

    def execute(
        self,
        pipeline_id: str,
        parameters: dict[str, Any] | None = None,
        key: str | None = None,
        tenant: str = TENANT,
        headers: dict[str, str] | None = None,
    ) -> Any:
        body: dict[str, Any] = {"pipeline_id": pipeline_id, "parameters": parameters or {}}
        if key:
            body["idempotency_key"] = key
        return self.runtime.call_api(
            "POST", f"/api/v1/tenants/{tenant}/pipelines/execute", body, self.headers if headers is None else headers
        )

    def add_tenant(self, tenant_id: str, limits: dict[str, int] | None = None) -> dict[str, str]:
        """Another tenant with relyco's pipelines; onboarded with `limits` (unthrottled when None). Its headers."""
        config_dir = self.runtime.settings.config_dir
        shutil.copytree(config_dir / TENANT, config_dir / tenant_id)
        (config_dir / tenant_id / "tenant.yaml").write_text(f"tenant_id: {tenant_id}\nname: {tenant_id}\n")
        if limits is None:
            return onboard_unthrottled(self.runtime.context, tenant_id)
        return onboard(self.runtime.context, tenant_id, limits)

    def start(self, pipeline_id: str, parameters: dict[str, Any] | None = None, key: str | None = None) -> str:
        response = self.execute(pipeline_id, parameters, key)
        if response.status not in (200, 202):
            raise RuntimeError(f"execute {pipeline_id}: {response.status} {response.body}")
        return str(response.body["run_id"])

    def run(self, run_id: str, tenant: str = TENANT, headers: dict[str, str] | None = None) -> dict[str, Any]:
        """The run with its stages, as the API shows it."""
        response = self.runtime.call_api(
            "GET",
            f"/api/v1/tenants/{tenant}/metadata/executions/{run_id}",
            headers=self.headers if headers is None else headers,
        )
        if response.status != 200:
            raise RuntimeError(f"get {run_id}: {response.status} {response.body}")
        return dict(response.body)

    def wait_terminal(
        self,
        run_ids: list[str],
        timeout_s: float,
        tenant: str = TENANT,
        headers: dict[str, str] | None = None,
        finalized: bool = False,
    ) -> dict[str, dict[str, Any]]:
        """Every run's final view, after the bus went idle (or the timeout: then some runs are not terminal).

        With `finalized`, also until every run's history is written (the watchdog writes what a crash left)."""
        started = time.monotonic()
        self.runtime.wait_idle(timeout_s)
        deadline = time.monotonic() + 5 if not finalized else started + timeout_s
        while True:  # the bus is idle once every run is done; allow a moment for a straggler all the same
            runs = {run_id: self.run(run_id, tenant, headers) for run_id in run_ids}
            done = all(r["status"] in TERMINAL for r in runs.values())
            if done and finalized:
                done = all((self.state.get(f"runs/{run_id}") or {}).get("finalized") for run_id in run_ids)
            if done or time.monotonic() > deadline:
                return runs
            time.sleep(0.2)

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """Status events the notifier recorded for the run (what alerting acts on)."""
        return [doc for _, doc in self.state.list("events") if doc.get("run_id") == run_id]


@contextlib.contextmanager
def embedded_drill(maintenance_every_s: float | None = None, **bus_options: Any) -> Iterator[Drill]:
    """`bus_options` go to `embedded.start` (duplicate_deliveries, max_delivery_attempts, max_backoff_s, workers);
    with `maintenance_every_s` the watchdog runs on that tick, as Cloud Scheduler drives it on GCP."""
    from shared import logs
    from shared.app import embedded
    from shared.runtime.settings import Settings

    # Drills provoke errors on purpose; their figures are the output. CLOUDACT_RELIABILITY_LOG_LEVEL=INFO to debug.
    logs.configure()
    logging.getLogger().setLevel(os.environ.get("CLOUDACT_RELIABILITY_LOG_LEVEL", "CRITICAL"))
    with tempfile.TemporaryDirectory(prefix="cloudact-reliability-") as tmp:
        config_dir = Path(tmp) / "tenant_configs"
        shutil.copytree(CONFIGS, config_dir)
        home = Path(tmp) / "home"
        runtime = embedded.start(Settings(runtime="embedded", home=home, config_dir=config_dir), **bus_options)
        drill = Drill(runtime, {}, home)
        if maintenance_every_s:
            runtime.start_maintenance_ticker(maintenance_every_s)
        try:
            drill.headers = onboard_unthrottled(runtime.context, TENANT)
            yield drill
        finally:
            drill.close()
