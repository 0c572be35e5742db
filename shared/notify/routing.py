"""Which channels hear about an event.

A tenant's rules decide for the events they match; where no tenant rule matches an event (or the tenant has no
`notifications:` section), the root rules decide. A matching tenant rule with `channels: []` mutes the event on
purpose, so a tenant can opt out of a root rule without inventing a dummy channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.errors import TerminalError
from shared.notify.config import (
    PLATFORM,
    Channel,
    EmailChannel,
    RootNotifications,
    Rule,
    Severity,
    SmtpServer,
    TenantNotifications,
)

Scope = Literal["tenant", "root"]

_SEVERITY: dict[str, Severity] = {
    "run.failed": "error",
    "run.timed_out": "error",
    "stage.failed": "error",
    "stage.timed_out": "error",
    "quota.exceeded": "error",
    "dq.failed": "error",
    "run.cancelled": "warning",
    "stage.retrying": "warning",
    "quota.warning": "warning",
}


def severity_of(event_type: str) -> Severity:
    return _SEVERITY.get(event_type, "info")


@dataclass(frozen=True)
class ChannelTarget:
    """A channel ready to send on: its settings, and whose secrets and SMTP relay it uses."""

    name: str
    scope: Scope
    config: Channel
    secrets_owner: str
    """Tenant id for a tenant's channel, `_platform` for a root channel."""
    smtp: SmtpServer | None = None
    smtp_secrets_owner: str = PLATFORM

    @property
    def key(self) -> str:
        """Unique across scopes: a tenant channel and a root channel may share a name."""
        return self.name if self.scope == "tenant" else f"root.{self.name}"

    @property
    def type(self) -> str:
        return self.config.type


@dataclass(frozen=True)
class Route:
    rule: str
    """`name` for a tenant rule, `root.name` for a root rule."""
    cooldown_seconds: float
    channel: ChannelTarget


def _target(
    name: str, scope: Scope, tenant_id: str, tenant: TenantNotifications | None, root: RootNotifications
) -> ChannelTarget:
    source: TenantNotifications = root if scope == "root" else (tenant or TenantNotifications())
    config = source.channels.get(name)
    if config is None:
        where = "the root notifications.yaml" if scope == "root" else f"tenant {tenant_id!r} tenant.yaml"
        raise TerminalError(f"no notification channel {name!r} in {where} (notifications.channels)")
    owner = PLATFORM if scope == "root" else tenant_id
    if not isinstance(config, EmailChannel):
        return ChannelTarget(name, scope, config, owner)
    if config.smtp is not None:
        return ChannelTarget(name, scope, config, owner, config.smtp, owner)
    if scope == "tenant" and tenant is not None and tenant.smtp is not None:
        return ChannelTarget(name, scope, config, owner, tenant.smtp, tenant_id)
    return ChannelTarget(name, scope, config, owner, root.smtp, PLATFORM)


def _matching(rules: list[Rule], event_type: str, pipeline_id: str, severity: Severity) -> list[Rule]:
    return [r for r in rules if r.matches(event_type, pipeline_id, severity)]


def resolve_routes(
    tenant_id: str,
    event_type: str,
    pipeline_id: str,
    tenant: TenantNotifications | None,
    root: RootNotifications,
) -> list[Route]:
    severity = severity_of(event_type)
    rules = _matching(tenant.rules, event_type, pipeline_id, severity) if tenant else []
    scope: Scope = "tenant"
    if not rules:
        rules, scope = _matching(root.rules, event_type, pipeline_id, severity), "root"
    routes: list[Route] = []
    for rule in rules:
        rule_key = rule.name if scope == "tenant" else f"root.{rule.name}"
        for channel in rule.channels:
            routes.append(Route(rule_key, rule.cooldown_minutes * 60, _target(channel, scope, tenant_id, tenant, root)))
    return routes


def tenant_channel(
    tenant_id: str, name: str, tenant: TenantNotifications | None, root: RootNotifications
) -> ChannelTarget:
    """A tenant's own channel by name (what `notify.*` steps send on)."""
    return _target(name, "tenant", tenant_id, tenant, root)


def root_channel(name: str, root: RootNotifications) -> ChannelTarget:
    return _target(name, "root", PLATFORM, None, root)


def operator_channels(root: RootNotifications) -> list[ChannelTarget]:
    return [_target(name, "root", PLATFORM, None, root) for name in root.operator_alerts.channels]
