"""Local servers for the emulator figures: this run's own Pub/Sub + Firestore emulators, and bqemulator.

The emulators are started on free ports (CLOUDACT_PUBSUB_PORT / CLOUDACT_FIRESTORE_PORT) through
scripts/emulators.sh, so a developer's emulators on 8085/8080 are never touched, and they are stopped on the way out
whatever happens. bqemulator (scripts/bqemulator.sh) is reused when one already answers on its port, otherwise
started and stopped here. Without the Google emulators the caller gets `Skip`: a figure is missing, never invented.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

from bench.harness import REPO_ROOT, Skip, progress
from bench.local_stack import free_ports

EMULATORS_SH = REPO_ROOT / "scripts" / "emulators.sh"
BQEMULATOR_SH = REPO_ROOT / "scripts" / "bqemulator.sh"
INSTALL_HINT = "gcloud components install pubsub-emulator cloud-firestore-emulator (and Java 17+)"


def free_port() -> int:
    return free_ports(1)[0]


@dataclass
class EmulatorServers:
    pubsub_port: int
    firestore_port: int
    bigquery_endpoint: str | None
    started_bqemulator: bool
    notes: list[str] = field(default_factory=list)

    @property
    def warehouse(self) -> str:
        """bigquery against bqemulator when it runs; DuckDB otherwise (only stage_worker writes it for no-op runs)."""
        return "bigquery" if self.bigquery_endpoint else "duckdb"

    @property
    def env(self) -> dict[str, str]:
        out = {
            "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{self.pubsub_port}",
            "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{self.firestore_port}",
            "CLOUDACT_WAREHOUSE": self.warehouse,
        }
        if self.bigquery_endpoint:
            out["CLOUDACT_BIGQUERY_ENDPOINT"] = self.bigquery_endpoint
        return out


def _emulators_script(command: str, pubsub_port: int, firestore_port: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLOUDACT_PUBSUB_PORT": str(pubsub_port), "CLOUDACT_FIRESTORE_PORT": str(firestore_port)}
    return subprocess.run([str(EMULATORS_SH), command], env=env, capture_output=True, text=True, cwd=REPO_ROOT)


def _bq_url() -> str:
    return f"http://127.0.0.1:{os.environ.get('CLOUDACT_BQEMU_PORT', '9050')}"


def _bq_healthy() -> bool:
    try:
        with urllib.request.urlopen(f"{_bq_url()}/healthz", timeout=2) as response:
            return 200 <= int(response.status) < 300
    except OSError:
        return False


@contextlib.contextmanager
def emulator_servers(who: str, bigquery: bool = True) -> Iterator[EmulatorServers]:
    """Start this run's emulators (and bqemulator if none runs and `bigquery`); stop what was started here, and only
    that. Cases that never touch a warehouse pass bigquery=False and get DuckDB."""
    pubsub_port, firestore_port = free_ports(2)  # distinct: one at a time could hand the same port out twice
    progress(f"{who}: starting Pub/Sub + Firestore emulators on :{pubsub_port} / :{firestore_port}")
    started = _emulators_script("start", pubsub_port, firestore_port)
    if started.returncode == 3:
        raise Skip(f"Google Pub/Sub + Firestore emulators not installed ({INSTALL_HINT})")
    if started.returncode != 0:
        _emulators_script("stop", pubsub_port, firestore_port)
        raise RuntimeError(f"emulators did not start (rc={started.returncode}): {started.stderr[-1500:]}")
    servers = EmulatorServers(pubsub_port, firestore_port, None, False)
    try:
        if not bigquery:
            servers.notes.append("no warehouse needed: bqemulator not started")
        elif _bq_healthy():
            servers.bigquery_endpoint = _bq_url()
            servers.notes.append("bqemulator already running: reused")
        else:
            progress(f"{who}: starting bqemulator")
            bq = subprocess.run([str(BQEMULATOR_SH), "start"], capture_output=True, text=True, cwd=REPO_ROOT)
            servers.started_bqemulator = True
            if bq.returncode == 0 and _bq_healthy():
                servers.bigquery_endpoint = _bq_url()
            else:
                servers.notes.append(f"bqemulator unavailable (rc={bq.returncode}); warehouse falls back to DuckDB")
        yield servers
    finally:
        if servers.started_bqemulator:
            subprocess.run([str(BQEMULATOR_SH), "stop"], capture_output=True, text=True, cwd=REPO_ROOT)
        stopped = _emulators_script("stop", pubsub_port, firestore_port)
        if stopped.returncode == 0:  # their logs are only worth keeping when something went wrong
            for name, port in (("pubsub", pubsub_port), ("firestore", firestore_port)):
                (REPO_ROOT / ".emulators" / f"{name}-{port}.log").unlink(missing_ok=True)
        progress(f"{who}: emulators stopped")


@contextlib.contextmanager
def process_env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for this process (the Google clients read the emulator hosts from it), then restore."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
