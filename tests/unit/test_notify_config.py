"""Notification config: validation with file:line:column, and who hears about what (tenant first, root fallback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.notify.config import (
    NotificationConfigError,
    RootNotifications,
    TenantNotifications,
    load_root,
    load_tenant,
    validate_all,
)
from shared.notify.routing import resolve_routes, severity_of

REPO = Path(__file__).resolve().parents[2]

ROOT = {
    "smtp": {"host": "relay.example", "username": "u", "password_secret": "smtp_password", "from": "a@ops.example"},
    "channels": {
        "ops_slack": {"type": "slack", "webhook_secret": "ops_hook"},
        "ops_email": {"type": "email", "to": ["ops@ops.example"]},
    },
    "rules": [{"name": "failures", "events": ["run.failed", "run.timed_out"], "channels": ["ops_slack"]}],
}
TENANT = {
    "smtp": {"host": "mail.acme.example", "port": 465, "security": "tls", "from": "alerts@acme.example"},
    "channels": {
        "team": {"type": "slack", "webhook_secret": "team_hook", "mentions": ["@here"]},
        "oncall": {"type": "email", "to": ["oncall@acme.example"]},
        "own_relay": {
            "type": "email",
            "to": ["x@acme.example"],
            "smtp": {"host": "smtp.acme.example", "username": "me", "password_secret": "pw", "from": "me@acme.example"},
        },
    },
    "rules": [
        {"name": "failures", "events": ["run.failed"], "channels": ["team", "oncall"], "cooldown_minutes": 30},
        {"name": "sales_done", "events": ["run.succeeded"], "pipelines": ["daily_*"], "channels": ["own_relay"]},
        {"name": "hush", "events": ["run.timed_out"], "pipelines": ["scratch_*"], "channels": []},
        {"name": "loud", "events": ["*"], "pipelines": ["critical"], "min_severity": "warning", "channels": ["team"]},
    ],
}


def routes(event_type: str, pipeline: str, tenant: dict | None = TENANT) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    t = TenantNotifications.model_validate(tenant) if tenant is not None else None
    found = resolve_routes("acme", event_type, pipeline, t, RootNotifications.model_validate(ROOT))
    return [(r.rule, r.channel.key) for r in found]


def test_tenant_rules_decide_for_the_events_they_match() -> None:
    assert routes("run.failed", "daily_sales") == [("failures", "team"), ("failures", "oncall")]
    assert routes("run.succeeded", "daily_sales") == [("sales_done", "own_relay")]
    assert routes("run.succeeded", "weekly") == []  # neither tenant nor root has a rule for it


def test_root_rules_apply_where_the_tenant_says_nothing() -> None:
    assert routes("run.timed_out", "daily_sales") == [("root.failures", "root.ops_slack")]
    assert routes("run.failed", "daily_sales", tenant=None) == [("root.failures", "root.ops_slack")]


def test_a_tenant_rule_without_channels_mutes_the_root_rule() -> None:
    assert routes("run.timed_out", "scratch_1") == []


def test_min_severity_and_pipeline_globs() -> None:
    assert severity_of("stage.retrying") == "warning" and severity_of("run.succeeded") == "info"
    assert routes("stage.retrying", "critical") == [("loud", "team")]
    assert routes("stage.succeeded", "critical") == []  # info < warning
    assert routes("stage.retrying", "other") == []


def test_email_channels_use_their_own_relay_then_the_tenants_then_the_roots() -> None:
    tenant = TenantNotifications.model_validate(TENANT)
    root = RootNotifications.model_validate(ROOT)
    by_key = {r.channel.key: r.channel for r in resolve_routes("acme", "run.failed", "p", tenant, root)}
    oncall = by_key["oncall"]
    assert oncall.smtp is not None and oncall.smtp.host == "mail.acme.example" and oncall.smtp_secrets_owner == "acme"
    own = resolve_routes("acme", "run.succeeded", "daily_x", tenant, root)[0].channel
    assert own.smtp is not None and own.smtp.host == "smtp.acme.example" and own.smtp_secrets_owner == "acme"
    no_relay = {k: v for k, v in TENANT.items() if k != "smtp"}
    plain = resolve_routes("acme", "run.failed", "p", TenantNotifications.model_validate(no_relay), root)
    assert plain[1].channel.smtp == root.smtp and plain[1].channel.smtp_secrets_owner == "_platform"
    root_route = resolve_routes("acme", "run.timed_out", "p", tenant, root)[0]
    assert root_route.channel.secrets_owner == "_platform"  # a root channel never reads the tenant's secrets


def _write(tmp_path: Path, tenant_yaml: str, root_yaml: str | None = None) -> Path:
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "tenant.yaml").write_text(tenant_yaml)
    if root_yaml is not None:
        (tmp_path / "_platform").mkdir()
        (tmp_path / "_platform" / "notifications.yaml").write_text(root_yaml)
    return tmp_path


def test_problems_are_reported_with_file_line_and_column(tmp_path: Path) -> None:
    config = _write(
        tmp_path,
        """tenant_id: acme
notifications:
  channels:
    team: {type: slack, webhook_secret: hook, mentions: ["@nobody here"]}
    mail: {type: email, to: [not-an-address]}
    pager: {type: pagerduty}
  rules:
    - name: r1
      events: [run.fail]
      channels: [team]
""",
        "smtp: {host: relay, security: none, username: u, password_secret: p, from: a@b.example}\n",
    )
    checked, issues = validate_all(config)
    assert checked == 2
    lines = [str(i).replace(str(config) + "/", "") for i in issues]
    assert lines[0] == (
        "_platform/notifications.yaml:1:7: smtp: refusing to send SMTP credentials without TLS: "
        "use security starttls or tls"
    )
    assert lines[1].startswith("acme/tenant.yaml:4:57: notifications.channels.team.mentions: mention '@nobody here'")
    assert lines[2] == "acme/tenant.yaml:5:29: notifications.channels.mail.to: 'not-an-address' is not an email address"
    assert lines[3].startswith("acme/tenant.yaml:6:12: notifications.channels.pager: Input tag 'pagerduty'")
    assert lines[4].startswith("acme/tenant.yaml:9:15: notifications.rules[0].events: 'run.fail' matches no event")


def test_unknown_channels_and_duplicate_rules_point_at_their_line(tmp_path: Path) -> None:
    config = _write(
        tmp_path,
        """notifications:
  channels: {team: {type: outbox}}
  rules:
    - {name: a, events: [run.failed], channels: [team, nowhere]}
    - {name: a, events: [run.failed], channels: [team]}
""",
    )
    with pytest.raises(NotificationConfigError) as caught:
        load_tenant(config, "acme")
    assert [f"{i.line}:{i.column} {i.key}: {i.message}" for i in caught.value.issues] == [
        "4:56 notifications.rules[0].channels[1]: unknown channel 'nowhere'",
        "5:14 notifications.rules[1].name: duplicate rule name 'a'",
    ]


def test_a_tenant_without_a_notifications_section_has_none(tmp_path: Path) -> None:
    config = _write(tmp_path, "tenant_id: acme\nname: Acme\n")
    assert load_tenant(config, "acme") is None
    assert load_root(config) == RootNotifications()  # no root file: defaults, no rules


def test_the_shipped_configs_are_valid() -> None:
    checked, issues = validate_all(REPO / "tenant_configs")
    assert issues == [] and checked >= 2
    _, test_issues = validate_all(REPO / "tests" / "data" / "tenant_configs")
    assert test_issues == []
