"""The embedded runtime's tenants: every folder of tenant_configs/ is onboarded, and the CLI gets a key for each.

Why: `make demo` on a fresh clone must run the sample tenant's pipeline through the same authenticated API a real
client uses, with nobody typing an admin token. So on start the embedded runtime onboards (idempotently) each
`tenant_configs/{tenant}/` with the plan named in its tenant.yaml, and keeps an admin-scoped API key per tenant in
`.cloudact/credentials.json` (mode 0600, next to the local admin token). A key that no longer verifies (state wiped,
key revoked) is replaced; a valid one is reused, so repeated runs issue no new keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shared import logs
from shared.lifecycle.onboarding import onboard_tenant
from shared.lifecycle.provisioning import provision_tenant
from shared.plans import PLANS
from shared.runtime.context import Context
from shared.tenancy.apikeys import issue_key, verify_raw_key
from shared.tenancy.credentials import ensure_local_credentials, save_local_credentials
from shared.tenancy.tenants import TENANT_ID, tenant_path
from shared.yaml_source import load_checked, read_config_text

log = logs.get_logger(__name__)
CLI_KEY_NAME = "cloudact CLI (local)"


@dataclass(frozen=True)
class LocalCredentials:
    admin_token: str
    api_keys: dict[str, str]
    """tenant_id -> an admin-scoped API key of that tenant."""


def config_tenants(config_dir: Path) -> dict[str, dict[str, Any]]:
    """tenant_id -> its tenant.yaml (or {}), for each tenant folder with a valid tenant id."""
    out: dict[str, dict[str, Any]] = {}
    if not config_dir.is_dir():
        return out
    for folder in sorted(p for p in config_dir.iterdir() if p.is_dir()):
        if not TENANT_ID.match(folder.name):
            continue
        profile_file = folder / "tenant.yaml"
        try:
            # bounded like every tenant file: no aliases, size and node caps (shared.yaml_source)
            data = load_checked(read_config_text(profile_file)).data if profile_file.is_file() else {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            log.warning("%s: %s; onboarding with defaults", profile_file, exc)
            data = {}
        out[folder.name] = data if isinstance(data, dict) else {}
    return out


def bootstrap_local_tenants(ctx: Context) -> LocalCredentials:
    creds = ensure_local_credentials(ctx.settings)
    keys: dict[str, str] = dict(creds.get("api_keys") or {})
    changed = False
    for tenant_id, profile in config_tenants(ctx.settings.config_dir).items():
        if ctx.state.get(tenant_path(tenant_id)) is None:
            plan = str(profile.get("plan") or "starter")
            onboarded = onboard_tenant(
                ctx,
                tenant_id,
                plan if plan in PLANS else "starter",
                {"name": str(profile.get("name") or tenant_id)},
                actor="local-bootstrap",
            )
            if ctx.settings.warehouse == "bigquery":  # the API leaves BigQuery datasets to Terraform; here we are it
                provision_tenant(ctx, tenant_id, strict=False)
            if onboarded.first_key is not None:
                keys[tenant_id] = onboarded.first_key.api_key
                changed = True
                continue
        principal = verify_raw_key(ctx, keys[tenant_id]) if tenant_id in keys else None
        if principal is None or principal.tenant_id != tenant_id:
            keys[tenant_id] = issue_key(ctx, tenant_id, CLI_KEY_NAME, ["admin"], created_by="local-bootstrap").api_key
            changed = True
    if changed:
        save_local_credentials(ctx.settings, {**creds, "api_keys": keys})
    configured = ctx.settings.admin_token
    return LocalCredentials(configured.get_secret_value() if configured else str(creds["admin_token"]), keys)
