"""The attack drill's ground: the embedded runtime with an attacker (`mallory`) and a victim (`victimco`), the
victim's canaries everywhere the attacker might reach, and the markers that give a leak away.

Canaries: a row in the victim's table, the victim's tenant secret, a file in the victim's landing folder, a file
outside every tenant's area, an object in a GCS bucket the attacker never declared (served by a local GCS
emulator), and what `.cloudact/credentials.json` holds (the admin token, every tenant's key). The victim's data is
written by the victim's own pipeline through the API, so the drill does not depend on how the warehouse is laid out.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reliability.attacks.judge import Markers
from reliability.attacks.sql_corpus import ATTACKER, VICTIM, VICTIM_TABLE, Paths
from reliability.attacks.step_corpus import VICTIM_BUCKET, VICTIM_OBJECT
from reliability.drill import Drill

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET_NAME = "vault_key"
DISCLOSURE = frozenset({"drill folder path", "repository path", "user home path", "settings catalog"})
"""Markers of the platform's own layout rather than another tenant's data: a leak through the product, but not
something a per-tenant warehouse can hide from a raw query by construction (its own file path and settings)."""


@dataclass
class Ground:
    drill: Drill
    tmp: Path
    paths: Paths
    canaries: dict[str, str]
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    gcs: bool = False
    """A GCS emulator serves the victim's bucket (else gs:// attacks reach nothing and are not measured)."""

    @property
    def pipelines(self) -> Path:
        return Path(self.drill.runtime.settings.config_dir) / ATTACKER / "pipelines"

    def warehouse(self, tenant: str) -> Any:
        """The tenant's warehouse: `Context.warehouse_for(tenant)` once per-tenant files exist, else the shared one."""
        ctx = self.drill.runtime.context
        per_tenant = getattr(ctx, "warehouse_for", None)
        return per_tenant(tenant) if callable(per_tenant) else ctx.warehouse

    def api(self, method: str, path: str, body: Any = None, tenant: str = ATTACKER, **kw: Any) -> Any:
        return self.drill.runtime.call_api(method, f"/api/v1/tenants/{tenant}{path}", body, self.headers[tenant], **kw)

    def markers(self) -> Markers:
        found = dict(self.canaries)
        creds = Path(self.paths.credentials)
        if creds.is_file():
            data = json.loads(creds.read_text())
            found["admin token"] = str(data.get("admin_token") or "")
            for tenant, key in (data.get("api_keys") or {}).items():
                found[f"api key of {tenant}"] = str(key)
        for tenant, headers in self.headers.items():
            found[f"drill key of {tenant}"] = headers.get("X-API-Key", "")
        found.update(
            {
                "victim tenant name": VICTIM,
                "victim table name": VICTIM_TABLE.split(".")[1],
                "drill folder path": str(self.tmp),
                "repository path": str(REPO_ROOT),
                "user home path": f"{Path.home()}/" if len(str(Path.home())) > 1 else "",
                "/etc/passwd content": "root:x:0:0",
                "settings catalog": "enable_external_access",
                "victim bucket": VICTIM_BUCKET,
            }
        )
        return Markers(found)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _configs(config_dir: Path, canary: str) -> None:
    _write(
        config_dir / VICTIM / "tenant.yaml",
        f"tenant_id: {VICTIM}\nname: Victim\nplan: enterprise\n",
    )
    seed = {
        "pipeline_id": "seed_vault",
        "steps": [
            {
                "step_id": "seed",
                "ps_type": "bigquery.query",
                "source": {"query": f"SELECT '{canary}' AS secret, 1 AS id"},
                "destination": {"dataset": "vault", "table": VICTIM_TABLE.split(".")[1], "write_mode": "truncate"},
            }
        ],
    }
    _write(config_dir / VICTIM / "pipelines" / "seed_vault.yaml", yaml.safe_dump(seed))
    # The attacker's notifications go to the local outbox: an error that leaks would reach them through alerts.
    _write(
        config_dir / ATTACKER / "tenant.yaml",
        f"tenant_id: {ATTACKER}\nname: Attacker\nplan: enterprise\n"
        "notifications:\n  channels:\n    alerts: {type: outbox}\n"
        "  rules:\n    - {name: failures, events: [run.failed, run.timed_out], channels: [alerts]}\n",
    )
    own = {
        "pipeline_id": "seed_own",
        "steps": [
            {
                "step_id": "seed",
                "ps_type": "bigquery.query",
                "source": {"query": "SELECT 'own-row' AS label, x AS n FROM UNNEST(GENERATE_ARRAY(1, 5)) AS x"},
                "destination": {"dataset": "own", "table": "data", "write_mode": "truncate"},
            }
        ],
    }
    _write(config_dir / ATTACKER / "pipelines" / "seed_own.yaml", yaml.safe_dump(own))


def _files(home: Path, tmp: Path, canaries: dict[str, str]) -> Paths:
    victim_file = home / "files" / VICTIM / "secret.csv"
    _write(victim_file, f"secret\n{canaries['victim landing file']}\n")
    canary_file = tmp / "outside" / "canary.txt"
    _write(canary_file, canaries["file outside tenants"] + "\n")
    own = home / "files" / ATTACKER
    _write(own / "own" / "rows.csv", "label,n\nown-file,1\n")
    # Symlinks planted in the attacker's own folder (a tenant can upload files there): one to the victim's file,
    # one to the victim's whole folder.
    (own / "link_to_victim.csv").symlink_to(victim_file)
    (own / "victim_dir").symlink_to(victim_file.parent, target_is_directory=True)
    return Paths(
        canary_file=str(canary_file),
        victim_file=str(victim_file),
        credentials=str(home / "credentials.json"),
        warehouse=str(home / "warehouse.duckdb"),
        home=str(home),
    )


@contextlib.contextmanager
def _gcs_bucket(canary: str) -> Iterator[bool]:
    """A GCS emulator on 127.0.0.1 holding the victim's bucket, with STORAGE_EMULATOR_HOST pointing at it while the
    drill runs (restored after). Yields False if the emulator package is missing."""
    try:
        from gcp_storage_emulator.server import create_server
    except ImportError:
        yield False
        return
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=VICTIM_BUCKET)
    server.start()
    before = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    reset = _reset_gcs_client()
    try:
        from google.cloud import storage  # type: ignore[attr-defined]

        client = storage.Client(project="drill")
        client.bucket(VICTIM_BUCKET).blob(VICTIM_OBJECT).upload_from_string(f"secret\n{canary}\n")
        yield True
    finally:
        if before is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = before
        reset()
        server.stop()


def _reset_gcs_client() -> Any:
    try:
        from shared.processors.file_sources import reset_gcs_client
    except ImportError:
        return lambda: None
    reset_gcs_client()
    return reset_gcs_client


@contextlib.contextmanager
def attack_ground() -> Iterator[Ground]:
    from bench.tenants import onboard_unthrottled
    from shared import logs
    from shared.app import embedded
    from shared.runtime.settings import Settings

    logs.configure()
    logging.getLogger().setLevel(os.environ.get("CLOUDACT_RELIABILITY_LOG_LEVEL", "CRITICAL"))
    tag = secrets.token_hex(6)
    canaries = {
        "victim table canary": f"CNRY-VAULT-{tag}",
        "victim secret": f"CNRY-SECRET-{tag}",
        "victim landing file": f"CNRY-LANDING-{tag}",
        "file outside tenants": f"CNRY-FILE-{tag}",
        "victim bucket object": f"CNRY-BUCKET-{tag}",
    }
    with (
        tempfile.TemporaryDirectory(prefix="cloudact-attacks-") as raw,
        _gcs_bucket(canaries["victim bucket object"]) as gcs,
    ):
        tmp = Path(raw).resolve()
        config_dir, home = tmp / "tenant_configs", tmp / "home"
        _configs(config_dir, canaries["victim table canary"])
        paths = _files(home, tmp, canaries)
        runtime = embedded.start(Settings(runtime="embedded", home=home, config_dir=config_dir))
        drill = Drill(runtime, {}, home)
        try:
            ground = Ground(drill, tmp, paths, canaries, gcs=gcs)
            for tenant in (ATTACKER, VICTIM):
                ground.headers[tenant] = onboard_unthrottled(runtime.context, tenant)
            drill.headers = ground.headers[ATTACKER]
            yield ground
        finally:
            drill.close()
