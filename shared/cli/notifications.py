"""`cloudact notifications`: the delivery log, the local outbox, and a check of the notification config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

_STYLE = {"sent": "green", "failed": "red", "suppressed": "yellow", "retrying": "cyan", "queued": "white"}


def _context() -> Any:
    from shared.runtime.context import Context
    from shared.runtime.settings import Settings

    return Context(Settings.from_env())


@click.group("notifications")
def notifications_group() -> None:
    """Alerts sent for runs: the delivery log, the local outbox, config validation."""


@notifications_group.command("list")
@click.option("--run", "run_id", default=None, help="Only this run's notifications.")
@click.option("--tenant", "tenant_id", default=None)
@click.option("--status", type=click.Choice(sorted(_STYLE)), default=None)
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the delivery log entries as JSON.")
def notifications_list(
    run_id: str | None, tenant_id: str | None, status: str | None, limit: int, as_json: bool
) -> None:
    """Every notification (newest first): where it went or why not, attempts, error; then the local outbox."""
    from rich.markup import escape

    from shared.cli.render import console
    from shared.notify.delivery import list_deliveries
    from shared.notify.outbox import display_path, list_outbox, outbox_dir

    ctx = _context()
    deliveries = list_deliveries(ctx, tenant_id, run_id, status, limit)
    if as_json:
        click.echo(json.dumps(deliveries, indent=2, default=str))
        return
    if not deliveries:
        console.print("no notifications" + (f" for run {run_id}" if run_id else "") + " yet")
    for d in deliveries:
        label = str(d.get("label") or d.get("status"))
        style = _STYLE.get(label.lower(), "white")  # a label is its delivery status in capitals (notify.outbox)
        tries = int(d.get("attempts") or 0)
        head = [
            str(d.get("created_at", ""))[:19].replace("T", " "),
            str(d.get("tenant_id") or "-"),
            str(d.get("run_id") or "-"),
            str(d.get("event_type") or d.get("source") or "-"),
            f"{d.get('rule') or d.get('source')} -> {d.get('channel')}",
        ]
        console.print(escape("  ".join(head)) + f"  [{style}]{label}[/] ({tries} attempt{'s' if tries != 1 else ''})")
        target = d.get("target")
        if d.get("outbox_path"):
            target = f"written to {display_path(str(d['outbox_path']))}, not sent (no channel configured)"
        for line in (target, d.get("error"), d.get("note")):
            if line:
                console.print(f"    {escape(str(line))}")
        console.print(f"    [dim]id {escape(str(d.get('delivery_id')))}[/]")
    files = list_outbox(ctx.settings)
    if files:
        console.print(f"local outbox: {len(files)} file(s) in {display_path(outbox_dir(ctx.settings))}/")
        mine = [d["outbox_path"] for d in deliveries if d.get("outbox_path")]
        for path in mine[:10] if mine else [str(p) for p in files[-5:]]:
            console.print(f"  {display_path(path)}")
    else:
        console.print(f"local outbox: empty ({display_path(outbox_dir(ctx.settings))}/)")


@notifications_group.command("show")
@click.argument("delivery_id")
def notifications_show(delivery_id: str) -> None:
    """One notification: its log entry and the message text as sent."""
    from shared.notify.delivery import delivery_path, public_delivery

    doc = _context().state.get(delivery_path(delivery_id))
    if doc is None:
        raise click.ClickException(f"no notification {delivery_id!r} (see `cloudact notifications list`)")
    view = public_delivery(doc)
    text = view.pop("text", "")
    for key in sorted(view):
        if view[key] is not None:
            click.echo(f"{key:>13}: {view[key]}")
    click.echo("")
    click.echo(text)


@notifications_group.command("validate")
@click.option("--config-dir", type=click.Path(path_type=Path, file_okay=False), default=None)
def notifications_validate(config_dir: Path | None) -> None:
    """Check tenant_configs/_platform/notifications.yaml and every tenant.yaml `notifications:` (file:line:col)."""
    from shared.notify.config import validate_all
    from shared.runtime.settings import Settings

    checked, issues = validate_all(config_dir or Settings.from_env().config_dir)
    for issue in issues:
        click.echo(str(issue), err=True)
    if issues:
        raise click.ClickException(f"{len(issues)} problem(s) in the notification config")
    click.echo(f"ok: {checked} notification config file(s) valid")


@notifications_group.command("platform-secret")
@click.argument("name")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the value from stdin instead of a hidden prompt.")
def notifications_platform_secret(name: str, from_stdin: bool) -> None:
    """Store a secret the root config names (ops webhook URL, SMTP password); tenants' own: `cloudact secrets set`."""
    import sys

    from shared.notify.config import PLATFORM
    from shared.secrets.store import put_secret, secret_path

    value = sys.stdin.read().rstrip("\n") if from_stdin else click.prompt("value", hide_input=True)
    if not value:
        raise click.ClickException("empty secret value")
    secret_path(PLATFORM, name)  # validates the name before anything is sealed
    ctx = _context()
    put_secret(ctx, PLATFORM, name, value.encode())
    click.echo(f"secret {PLATFORM}/{name} stored (envelope-encrypted)")


@notifications_group.command("test")
@click.argument("tenant_id")
@click.argument("channel")
def notifications_test(tenant_id: str, channel: str) -> None:
    """Send a test message on one of a tenant's channels (`root.NAME` for a root channel) and say where it went."""
    import time

    from shared.clock import iso, utc_now
    from shared.errors import TerminalError
    from shared.notify import load_configs
    from shared.notify.delivery import Delivery, deliver, delivery_id, delivery_path
    from shared.notify.message import Message
    from shared.notify.routing import root_channel, tenant_channel

    ctx = _context()
    tenant, root, problem = load_configs(ctx.settings.config_dir, tenant_id)
    if problem:
        raise click.ClickException(problem)
    try:
        target = (
            root_channel(channel.removeprefix("root."), root)
            if channel.startswith("root.")
            else tenant_channel(tenant_id, channel, tenant, root)
        )
    except TerminalError as exc:
        raise click.ClickException(str(exc)) from None
    message = Message(
        title=f"test notification for {tenant_id}",
        severity="info",
        headline=f"If you can read this, channel {target.key} of {tenant_id} works.",
        facts=(("Tenant", tenant_id), ("Channel", target.key), ("Sent at", iso(utc_now())[:19] + "Z")),
    )
    did = delivery_id("test", iso(utc_now()), target.key)
    outcome = deliver(ctx, Delivery(did, tenant_id, "test", target, message), root, time.monotonic() + 30)
    doc = ctx.state.get(delivery_path(did)) or {}
    where = doc.get("outbox_path") or doc.get("target") or ""
    click.echo(f"{outcome.status}: {where} {doc.get('error') or doc.get('note') or ''}".rstrip())
    if outcome.status != "sent":
        raise SystemExit(1)
