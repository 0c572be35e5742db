"""Secrets at rest: plant secrets through the API (tenant secrets, API keys issued at onboarding and by the API), run
a pipeline, stop the runtime so every file is flushed, then scan every byte the embedded runtime keeps — the state
store (SQLite), the warehouse (DuckDB) and anything else in its folder — for any of them in plain text or base64.
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

from bench.tenants import has_tenancy
from reliability.drill import TENANT, embedded_drill
from reliability.harness import Figure, NotMeasured, Options, figure, info, ratio

NAME = "secrets at rest"
SECRETS = 5


def encodings(value: str) -> list[bytes]:
    raw = value.encode()
    return [raw, base64.b64encode(raw), base64.urlsafe_b64encode(raw), raw.hex().encode()]


def store_of(path: Path) -> str:
    if ".sqlite" in path.name:
        return "state store"
    if ".duckdb" in path.name or path.suffix == ".wal":
        return "warehouse"
    return "other files"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def run(options: Options) -> list[Figure]:
    if not has_tenancy():
        raise NotMeasured("needs API keys and the secrets API (tenancy, issue 4)")
    planted: dict[str, str] = {}
    with embedded_drill() as drill:
        call, base = drill.runtime.call_api, f"/api/v1/tenants/{TENANT}"
        planted["API key from onboarding"] = drill.headers["X-API-Key"]
        created = call("POST", f"{base}/api-keys", {"name": "scan"}, drill.headers)
        if created.status in (200, 201) and isinstance(created.body.get("api_key"), str):
            planted["API key from the API"] = created.body["api_key"]
        stored = 0
        for i in range(SECRETS):
            value = f"s3cr3t-{secrets.token_urlsafe(18)}"
            planted[f"tenant secret {i}"] = value
            stored += call("PUT", f"{base}/secrets/scan_{i}", {"value": value}, drill.headers).status == 200
        run_id = drill.start("seq3", key="secrets-scan")
        drill.wait_terminal([run_id], 60)
        from shared.secrets.store import get_secret

        readable = sum(
            get_secret(drill.runtime.context, TENANT, f"scan_{i}") == planted[f"tenant secret {i}"].encode()
            for i in range(SECRETS)
        )
        canary = f"canary-{secrets.token_urlsafe(18)}"  # stored in clear on purpose: proves the scan can see
        drill.state.set("drill/plaintext_canary", {"value": canary})
        drill.close()
        files = [p for p in drill.home.rglob("*") if p.is_file()]
        hits: dict[str, list[str]] = {"state store": [], "warehouse": [], "other files": []}
        scanned = 0
        canary_seen = False
        for path in files:
            data = path.read_bytes()
            scanned += len(data)
            canary_seen = canary_seen or canary.encode() in data
            for label, value in planted.items():
                if any(form in data for form in encodings(value)):
                    hits[store_of(path)].append(f"{label} in {path.name}")
    return [
        figure(
            NAME,
            "secrets stored through the API and readable back",
            ratio(readable, SECRETS),
            stored == SECRETS and readable == SECRETS,
            "100 %",
        ),
        figure(NAME, "scan finds a canary written in clear (self-test)", _yes(canary_seen), canary_seen, "yes"),
        figure(
            NAME,
            "plaintext secrets found in the state store",
            len(hits["state store"]),
            not hits["state store"],
            "0",
            "; ".join(hits["state store"][:3]),
        ),
        figure(
            NAME,
            "plaintext secrets found in the warehouse",
            len(hits["warehouse"]),
            not hits["warehouse"],
            "0",
            "; ".join(hits["warehouse"][:3]),
        ),
        figure(
            NAME,
            "plaintext secrets found in other runtime files",
            len(hits["other files"]),
            not hits["other files"],
            "0",
            "; ".join(hits["other files"][:3]),
        ),
        info(
            NAME,
            "scanned",
            f"{len(files)} files, {scanned / 1e6:.1f} MB",
            f"{len(planted)} secrets, each as raw, base64 and hex",
        ),
    ]
