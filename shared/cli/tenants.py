"""`cloudact tenants | keys | secrets`: operator commands on the configured runtime's state store and key service.

The CLI talks to the stores directly (SQLite + local keyring embedded; Firestore + Cloud KMS with CLOUDACT_RUNTIME=gcp),
so it is authenticated by the operator's own cloud credentials (IAM), not by an API credential; the HTTP API's admin
routes need the admin credential instead. Every change is audited like its HTTP twin.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click


@contextmanager
def _context() -> Iterator[Any]:
    from shared.errors import ClientError, TerminalError
    from shared.runtime.context import Context
    from shared.runtime.settings import Settings

    ctx = Context(Settings.from_env())
    try:
        yield ctx
    except (ClientError, TerminalError) as exc:
        raise click.ClickException(getattr(exc, "message", str(exc))) from exc
    finally:
        ctx.close()


def _echo(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _limits(pairs: tuple[str, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not value.isdigit():
            raise click.BadParameter(f"{pair!r} is not NAME=INTEGER", param_hint="--limit")
        out[key] = int(value)
    return out


def _actor() -> str:
    import getpass

    return f"cli:{getpass.getuser()}"


# ---------------------------------------------------------------------------------------------- tenants


@click.group("tenants")
def tenants_group() -> None:
    """Tenants: onboard, provision, list, show, change plan/limits, suspend/activate; the admin credential."""


@tenants_group.command("onboard")
@click.argument("tenant_id")
@click.option("--plan", default="starter", show_default=True, help="free | starter | professional | enterprise")
@click.option("--name", default=None, help="Display name.")
@click.option("--email", default=None, help="Contact email.")
@click.option("--limit", "limits", multiple=True, help="Per-tenant override, e.g. --limit runs_per_day=50.")
def tenants_onboard(tenant_id: str, plan: str, name: str | None, email: str | None, limits: tuple[str, ...]) -> None:
    """Onboard a tenant (idempotent): tenant record, its datasets (`tenants provision`), and its first API key, shown
    once."""
    from shared.lifecycle.onboarding import onboard_tenant

    profile = {k: v for k, v in {"name": name, "contact_email": email}.items() if v}
    with _context() as ctx:
        result = onboard_tenant(ctx, tenant_id, plan, profile, _actor(), None, _limits(limits))
    click.echo(f"tenant {tenant_id}: {'onboarded' if result.created else 'already onboarded'} (plan {plan})")
    if result.first_key is not None:
        click.echo(f"first API key (admin scope), shown once - store it now:\n{result.first_key.api_key}")


@tenants_group.command("list")
@click.option("--status", type=click.Choice(["active", "suspended"]), default=None)
def tenants_list(status: str | None) -> None:
    from shared.tenancy.tenants import list_tenants

    with _context() as ctx:
        for tenant in list_tenants(ctx, status):
            click.echo(f"{tenant['tenant_id']:<30} {tenant['plan']:<14} {tenant['status']:<10} {tenant['created_at']}")


@tenants_group.command("show")
@click.argument("tenant_id")
def tenants_show(tenant_id: str) -> None:
    """The tenant record with today's usage and effective limits."""
    from shared.runs.admission import usage
    from shared.tenancy.tenants import get_tenant

    with _context() as ctx:
        _echo({"tenant": get_tenant(ctx, tenant_id), "usage": usage(ctx, tenant_id)})


@tenants_group.command("update")
@click.argument("tenant_id")
@click.option("--plan", default=None)
@click.option("--status", type=click.Choice(["active", "suspended"]), default=None, help="Suspend or reactivate.")
@click.option("--limit", "limits", multiple=True, help="Per-tenant override NAME=INTEGER (merged with existing).")
def tenants_update(tenant_id: str, plan: str | None, status: str | None, limits: tuple[str, ...]) -> None:
    """Change a tenant's plan, status or limit overrides (audited)."""
    from shared.tenancy.administration import merged_limits
    from shared.tenancy.tenants import update_tenant

    with _context() as ctx:
        changes: dict[str, Any] = {"plan": plan, "status": status}
        if limits:
            changes["limits"] = merged_limits(ctx, tenant_id, _limits(limits))
        _echo(update_tenant(ctx, tenant_id, changes, _actor()))


@tenants_group.command("provision")
@click.argument("tenant_id")
def tenants_provision(tenant_id: str) -> None:
    """Create the tenant's missing datasets ({tenant}_metadata and every dataset its pipelines write to by name) and
    history tables, as your own identity (on GCP: bigquery.datasets.create). Idempotent; onboarding does it too."""
    from shared.lifecycle.provisioning import provision_tenant
    from shared.tenancy.tenants import get_tenant

    with _context() as ctx:
        get_tenant(ctx, tenant_id)  # an unknown tenant is an error, not a new set of datasets
        _echo(provision_tenant(ctx, tenant_id).as_dict())


@tenants_group.command("offboard")
@click.argument("tenant_id")
@click.option("--delete-data", is_flag=True, help="Also delete the tenant's datasets and secrets (needs --yes).")
@click.option("--yes", is_flag=True, help="Confirm --delete-data: the data is gone for good.")
def tenants_offboard(tenant_id: str, delete_data: bool, yes: bool) -> None:
    """Offboard a tenant: revoke its keys, stop its runs and schedules (idempotent, audited).

    Its data stays unless --delete-data --yes; without them the answer lists what would be deleted.
    """
    from shared.lifecycle.offboarding import offboard_tenant

    if delete_data and not yes:
        raise click.UsageError("--delete-data deletes the tenant's datasets and secrets for good: add --yes")
    with _context() as ctx:
        _echo(offboard_tenant(ctx, tenant_id, tenant_id if delete_data else None, _actor()))


@tenants_group.command("admin-token")
def tenants_admin_token() -> None:
    """Print the local admin credential (embedded/emulators only; production reads it from a secret)."""
    from shared.runtime.settings import Settings
    from shared.tenancy.credentials import ensure_local_credentials

    settings = Settings.from_env()
    if settings.keys != "local":
        raise click.ClickException("there is no local admin credential with this key service; see the README")
    click.echo(ensure_local_credentials(settings)["admin_token"])


@tenants_group.command("seal-admin-token")
def tenants_seal_admin_token() -> None:
    """Read an admin token on stdin; print it sealed with this runtime's key service (CLOUDACT_ADMIN_TOKEN_SEALED)."""
    from shared.tenancy.credentials import seal_admin_token

    token = sys.stdin.readline().strip()
    with _context() as ctx:
        click.echo(seal_admin_token(ctx, token))


# ---------------------------------------------------------------------------------------------- keys


@click.group("keys")
def keys_group() -> None:
    """API keys: create (shown once), list, rotate with a grace period, revoke."""


@keys_group.command("create")
@click.argument("tenant_id")
@click.option("--name", required=True)
@click.option("--scope", "scopes", multiple=True, help="Repeat; default: every scope but admin and secrets:write.")
@click.option("--expires-in-days", type=int, default=None)
def keys_create(tenant_id: str, name: str, scopes: tuple[str, ...], expires_in_days: int | None) -> None:
    from shared.tenancy.administration import create_api_key
    from shared.tenancy.apikeys import DEFAULT_SCOPES

    with _context() as ctx:
        key = create_api_key(ctx, tenant_id, name, scopes or DEFAULT_SCOPES, expires_in_days, _actor())
    click.echo(f"key {key.key_id} ({', '.join(key.doc['scopes'])}), shown once - store it now:\n{key.api_key}")


@keys_group.command("list")
@click.argument("tenant_id")
def keys_list(tenant_id: str) -> None:
    from shared.tenancy.apikeys import list_keys

    with _context() as ctx:
        for key in list_keys(ctx, tenant_id):
            state = "active" if key["active"] else ("revoked" if key["revoked_at"] else "expired")
            click.echo(f"{key['key_id']}  {state:<8} {key['name']:<30} {','.join(key['scopes'])}")


@keys_group.command("rotate")
@click.argument("tenant_id")
@click.argument("key_id")
@click.option("--grace-seconds", default=86400, show_default=True, help="How long the old key keeps working.")
def keys_rotate(tenant_id: str, key_id: str, grace_seconds: int) -> None:
    from shared.tenancy.administration import rotate_api_key

    with _context() as ctx:
        new, old = rotate_api_key(ctx, tenant_id, key_id, grace_seconds, _actor())
    click.echo(f"old key {key_id} valid until {old['expires_at']}; new key {new.key_id}, shown once:\n{new.api_key}")


@keys_group.command("revoke")
@click.argument("tenant_id")
@click.argument("key_id")
def keys_revoke(tenant_id: str, key_id: str) -> None:
    from shared.tenancy.administration import revoke_api_key

    with _context() as ctx:
        doc = revoke_api_key(ctx, tenant_id, key_id, _actor())
    click.echo(f"key {key_id} revoked at {doc['revoked_at']}")


# ---------------------------------------------------------------------------------------------- secrets


@click.group("secrets")
def secrets_group() -> None:
    """Tenant secrets (source credentials, webhook URLs, SMTP passwords), envelope-encrypted with the key service."""


@secrets_group.command("set")
@click.argument("tenant_id")
@click.argument("name")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the value from stdin instead of a hidden prompt.")
def secrets_set(tenant_id: str, name: str, from_stdin: bool) -> None:
    """Store a secret; the value never appears in arguments, logs or the state store."""
    from shared.tenancy.administration import set_tenant_secret

    value = sys.stdin.read().rstrip("\n") if from_stdin else click.prompt("value", hide_input=True)
    if not value:
        raise click.ClickException("empty secret value")
    with _context() as ctx:
        set_tenant_secret(ctx, tenant_id, name, value.encode(), _actor())
    click.echo(f"secret {tenant_id}/{name} stored (envelope-encrypted)")


@secrets_group.command("list")
@click.argument("tenant_id")
def secrets_list(tenant_id: str) -> None:
    from shared.secrets.store import list_secret_names

    with _context() as ctx:
        for name in list_secret_names(ctx, tenant_id):
            click.echo(name)


@secrets_group.command("delete")
@click.argument("tenant_id")
@click.argument("name")
def secrets_delete(tenant_id: str, name: str) -> None:
    from shared.tenancy.administration import delete_tenant_secret

    with _context() as ctx:
        delete_tenant_secret(ctx, tenant_id, name, _actor())
    click.echo(f"secret {tenant_id}/{name} deleted")
