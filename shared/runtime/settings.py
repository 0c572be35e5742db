"""Runtime configuration, read once from the environment.

`CLOUDACT_RUNTIME` picks a preset (embedded | emulators | gcp); each adapter can be overridden on its own with
`CLOUDACT_BUS`, `CLOUDACT_STATE`, `CLOUDACT_WAREHOUSE`, `CLOUDACT_KEYS`.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

RuntimeName = Literal["embedded", "emulators", "gcp"]

_PRESETS: dict[str, dict[str, str]] = {
    "embedded": {"bus": "inprocess", "state": "sqlite", "warehouse": "duckdb", "keys": "local"},
    "emulators": {"bus": "pubsub", "state": "firestore", "warehouse": "duckdb", "keys": "local"},
    "gcp": {"bus": "pubsub", "state": "firestore", "warehouse": "bigquery", "keys": "kms"},
}

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Settings:
    runtime: RuntimeName = "embedded"
    """Preset of adapters: embedded (in-process, SQLite, DuckDB), emulators (Google emulators), gcp (production)."""
    bus: str = "inprocess"
    """Message bus adapter: inprocess | pubsub (default: the runtime's preset)."""
    state: str = "sqlite"
    """State store adapter: sqlite | firestore (default: the runtime's preset)."""
    warehouse: str = "duckdb"
    """Warehouse adapter: duckdb | bigquery (default: the runtime's preset)."""
    keys: str = "local"
    """Key service that seals tenant secrets: local (AES-GCM keyring under home) | kms (needs kms_key)."""
    project: str = "cloudact-local"
    """GCP project of Pub/Sub, Firestore, BigQuery and the exporters (falls back to GOOGLE_CLOUD_PROJECT)."""
    home: Path = field(default_factory=lambda: Path(".cloudact").resolve())
    """Embedded runtime's folder: SQLite state, DuckDB warehouse, local keyring."""
    config_dir: Path = REPO_ROOT / "tenant_configs"
    """The tenant_configs/ folder: {tenant}/tenant.yaml and pipelines/*.yaml (part of the deployed bundle)."""
    firestore_database: str = "(default)"
    """Firestore database id of the state store."""
    bigquery_endpoint: str | None = None
    """bqemulator's REST endpoint (tests); None means the real BigQuery API."""
    bigquery_location: str = "US"
    """BigQuery location of tenant datasets and jobs (EU, US or a region)."""
    kms_key: str | None = None
    """Cloud KMS CryptoKey resource name used to wrap data keys."""
    log_level: str = "INFO"
    """Python log level of the JSON logs (DEBUG, INFO, WARNING, ERROR)."""
    trace_exporter: str = "none"
    """Where spans go: none | console | otlp | gcp (Cloud Trace) | file (JSON lines, see trace_file)."""
    trace_file: Path | None = None
    """File the `file` trace exporter appends spans to, one JSON object per line."""
    trace_sample_ratio: float = 1.0
    """Share of runs traced (0.0-1.0); a run's spans are all kept or all dropped."""
    metrics_exporter: str = "none"
    """Where metrics go: none | console | otlp | gcp (Cloud Monitoring) | memory (in-process, for tests)."""
    egress_allow_private: tuple[str, ...] | None = None
    """CIDRs outbound HTTP (http.extract) may reach although not public, for local development; None: the runtime's
    default (loopback + RFC 1918 locally). Never honoured on `gcp`; metadata/link-local are refused everywhere."""
    stage_redispatches: int = 3
    """Times a stage task that ran out of deliveries (dead-lettered, e.g. refused for capacity by Cloud Run's 429s)
    is re-dispatched before its stage is failed. Each cycle is a whole Pub/Sub retry policy (10 deliveries, 10-600 s
    backoff on GCP), so 3 covers well over an hour of throttling; a worker that crashes on a task fails after 3."""
    job_events_after_s: float | None = None
    """With BigQuery's job-completion events wired (Terraform's log sink to cdp-job-events: 60 on GCP), a job step
    still running this many seconds after its attempt started is no longer re-checked back to back: its completion
    event re-checks it at once, the watchdog's tick at the latest (a round per tick). None (embedded, emulators, which
    have no audit log): rounds follow each other for the job's whole length, one instance polling it."""
    run_retention_days: float = 400.0
    """Days a run's state documents (the run, its stages, claims, its idempotency key) are kept after the run is
    created: they carry `expire_at` and Firestore's TTL policies delete them after it (the embedded store purges
    them in maintenance). Run history in `{tenant}_metadata` is not affected. 400: a year of runs plus a month."""
    audit_retention_days: float = 400.0
    """Days an audit record (`audit/...`) is kept: a year of admin changes plus a month, then TTL-deleted."""
    notification_retention_days: float = 90.0
    """Days notification records, delivery logs and dead-letter records are kept before TTL deletes them."""
    global_requests_per_minute: int = 60_000
    """api function: requests one instance serves per minute over all tenants, unauthenticated included (a flood
    guard; the platform-wide ceiling is this times the function's max instances)."""
    # The two secrets are SecretStr and left out of repr: printing Settings (or a Context) never shows them.
    api_key_pepper: SecretStr | None = field(default=None, repr=False)
    """api function (and the CLI on its runtime): the HMAC key API-key secrets are stored under, >= 32 characters, a
    Secret Manager secret mounted with `--set-secrets`. Unset: a random pepper sealed with the key service is kept
    in the state store (shared/tenancy/credentials.py)."""
    admin_token: SecretStr | None = field(default=None, repr=False)
    """api function: the platform admin credential (`X-Admin-Token`), >= 32 characters, a Secret Manager secret
    mounted with `--set-secrets`. Unset: admin_token_sealed, else (local keyring only) `.cloudact/credentials.json`,
    else the admin routes answer 503."""
    admin_token_sealed: str | None = None
    """api function: the admin credential sealed with Cloud KMS, base64 (`cloudact tenants seal-admin-token`)."""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = dict(os.environ if env is None else env)
        runtime = e.get("CLOUDACT_RUNTIME", "embedded")
        if runtime not in _PRESETS:
            raise ValueError(f"CLOUDACT_RUNTIME must be one of {sorted(_PRESETS)}, got {runtime!r}")
        preset = _PRESETS[runtime]
        return cls(
            runtime=runtime,  # type: ignore[arg-type]
            bus=e.get("CLOUDACT_BUS", preset["bus"]),
            state=e.get("CLOUDACT_STATE", preset["state"]),
            warehouse=e.get("CLOUDACT_WAREHOUSE", preset["warehouse"]),
            keys=e.get("CLOUDACT_KEYS", preset["keys"]),
            project=e.get("CLOUDACT_PROJECT") or e.get("GOOGLE_CLOUD_PROJECT") or "cloudact-local",
            home=Path(e.get("CLOUDACT_HOME", ".cloudact")).resolve(),
            config_dir=Path(e.get("CLOUDACT_CONFIG_DIR", str(REPO_ROOT / "tenant_configs"))).resolve(),
            firestore_database=e.get("CLOUDACT_FIRESTORE_DATABASE", "(default)"),
            bigquery_endpoint=e.get("CLOUDACT_BIGQUERY_ENDPOINT") or None,
            bigquery_location=e.get("CLOUDACT_BIGQUERY_LOCATION", "US"),
            kms_key=e.get("CLOUDACT_KMS_KEY") or None,
            log_level=e.get("CLOUDACT_LOG_LEVEL", "INFO"),
            trace_exporter=e.get("CLOUDACT_TRACE_EXPORTER", "gcp" if runtime == "gcp" else "none"),
            trace_file=Path(e["CLOUDACT_TRACE_FILE"]).resolve() if e.get("CLOUDACT_TRACE_FILE") else None,
            trace_sample_ratio=float(e.get("CLOUDACT_TRACE_SAMPLE_RATIO", "1.0")),
            metrics_exporter=e.get("CLOUDACT_METRICS_EXPORTER", "none"),
            egress_allow_private=_egress_allow_private(runtime, e.get("CLOUDACT_EGRESS_ALLOW_PRIVATE")),
            stage_redispatches=int(e.get("CLOUDACT_STAGE_REDISPATCHES", "3")),
            job_events_after_s=_optional_float(e.get("CLOUDACT_JOB_EVENTS_AFTER_S")),
            run_retention_days=float(e.get("CLOUDACT_RUN_RETENTION_DAYS", "400")),
            audit_retention_days=float(e.get("CLOUDACT_AUDIT_RETENTION_DAYS", "400")),
            notification_retention_days=float(e.get("CLOUDACT_NOTIFICATION_RETENTION_DAYS", "90")),
            global_requests_per_minute=int(e.get("CLOUDACT_GLOBAL_REQUESTS_PER_MINUTE", "60000")),
            api_key_pepper=_secret(e.get("CLOUDACT_API_KEY_PEPPER")),
            admin_token=_secret(e.get("CLOUDACT_ADMIN_TOKEN")),
            admin_token_sealed=e.get("CLOUDACT_ADMIN_TOKEN_SEALED") or None,
        )


def _secret(value: str | None) -> SecretStr | None:
    """An empty variable counts as unset (Terraform writes "" for a secret it does not manage)."""
    return SecretStr(value) if value else None


def _egress_allow_private(runtime: str, value: str | None) -> tuple[str, ...] | None:
    """`CLOUDACT_EGRESS_ALLOW_PRIVATE=127.0.0.0/8,10.1.0.0/16` (or `none`); refused on gcp rather than ignored."""
    if value is None:
        return None
    cidrs = tuple(c.strip() for c in value.split(",") if c.strip() and c.strip().lower() != "none")
    if cidrs and runtime == "gcp":
        raise ValueError("CLOUDACT_EGRESS_ALLOW_PRIVATE is not allowed on the gcp runtime: tenants' HTTP stays public")
    for cidr in cidrs:
        ipaddress.ip_network(cidr, strict=False)  # ValueError names a malformed entry
    return cidrs


def _optional_float(text: str | None) -> float | None:
    """An unset or empty variable is None (Terraform writes "" for a value it leaves out)."""
    return float(text) if text else None
