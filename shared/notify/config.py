"""Who hears about what: the `notifications:` section of a tenant.yaml and the platform-wide root file.

The root file, `tenant_configs/_platform/notifications.yaml`, holds the platform's defaults (SMTP relay, allowed Slack
hosts, retry policy, links), the rules used where a tenant says nothing, and the operator-alert channels. It is not a
tenant: `_platform` has no pipelines/ folder, and its secrets live under the pseudo-tenant `_platform`, which no real
tenant id can equal (tenant ids start with a letter).

Both files are validated as a whole and every problem is reported as `file:line:column: key: message`, because a
routing mistake found at 3 a.m. by a missing alert is much more expensive than one found by `notifications validate`.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from shared.contracts.messages import EventType
from shared.errors import TerminalError
from shared.yaml_source import SourceIssue, compose_and_load, key_path, locate, read_config_text

PLATFORM = "_platform"
"""Pseudo-tenant that owns the root config's secrets (`tenants/_platform/secrets/...`)."""
ROOT_FILE = Path(PLATFORM) / "notifications.yaml"
KNOWN_EVENT_TYPES: tuple[str, ...] = get_args(EventType)
Severity = Literal["info", "warning", "error"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "error": 2}

_IDENTIFIER = r"^[a-z][a-z0-9_]{0,62}$"
_SECRET = r"^[a-z][a-z0-9_\-]{0,62}$"
_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SmtpServer(_Strict):
    """An SMTP submission server. The password is a secret, never a value in YAML."""

    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = Field(
        default="starttls", description="starttls (port 587), tls (implicit TLS, port 465), none (local relays only)."
    )
    username: str | None = None
    password_secret: str | None = Field(default=None, pattern=_SECRET, description="Secret holding the password.")
    sender: str = Field(alias="from", min_length=3, description="From header, e.g. 'Alerts <alerts@example.com>'.")
    ca_file: str | None = Field(default=None, description="PEM bundle to verify the server with (private CA).")
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _credentials_need_tls(self) -> SmtpServer:
        if self.security == "none" and (self.username or self.password_secret):
            raise ValueError("refusing to send SMTP credentials without TLS: use security starttls or tls")
        if bool(self.username) != bool(self.password_secret):
            raise ValueError("username and password_secret go together")
        return self


class SlackChannel(_Strict):
    type: Literal["slack"]
    webhook_secret: str = Field(pattern=_SECRET, description="Secret holding the incoming-webhook URL.")
    mentions: list[str] = Field(
        default_factory=list, description="@here, @channel, a user id (U...) or a user group id (S...)."
    )
    mention_min_severity: Severity = Field(default="error", description="Mention only for events this severe.")

    @field_validator("mentions")
    @classmethod
    def _mentions(cls, value: list[str]) -> list[str]:
        for mention in value:
            if not re.fullmatch(r"@?(here|channel|everyone)|[UWS][A-Z0-9]{2,20}|<[!@][^<>\s]+>", mention):
                raise ValueError(f"mention {mention!r} is not @here, @channel, a U.../S... id or <@...>")
        return value


class EmailChannel(_Strict):
    type: Literal["email"]
    to: list[str] = Field(min_length=1)
    smtp: SmtpServer | None = Field(default=None, description="Default: the root config's smtp relay.")

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if not _EMAIL.match(address):
                raise ValueError(f"{address!r} is not an email address")
        return value


class OutboxChannel(_Strict):
    """Writes the message to the local outbox (embedded runtime) and the delivery log: a channel that needs nothing."""

    type: Literal["outbox"]


Channel = Annotated[SlackChannel | EmailChannel | OutboxChannel, Field(discriminator="type")]


class Rule(_Strict):
    name: str = Field(pattern=_IDENTIFIER)
    events: list[str] = Field(min_length=1, description="Event types or globs: run.failed, run.*, *.")
    pipelines: list[str] = Field(default_factory=lambda: ["*"], description="Pipeline ids or globs.")
    min_severity: Severity = "info"
    channels: list[str] = Field(description="Channel names; an empty list mutes the matching events.")
    cooldown_minutes: float = Field(
        default=0, ge=0, le=7 * 24 * 60, description="After a send, repeats for the same pipeline are suppressed."
    )

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not any(fnmatch.fnmatchcase(t, pattern) for t in KNOWN_EVENT_TYPES):
                raise ValueError(f"{pattern!r} matches no event type; known: {', '.join(KNOWN_EVENT_TYPES)}")
        return value

    def matches(self, event_type: str, pipeline_id: str, severity: str) -> bool:
        return (
            any(fnmatch.fnmatchcase(event_type, p) for p in self.events)
            and any(fnmatch.fnmatchcase(pipeline_id, p) for p in self.pipelines)
            and SEVERITY_RANK[severity] >= SEVERITY_RANK[self.min_severity]
        )


class TenantNotifications(_Strict):
    """`notifications:` in tenant_configs/{tenant}/tenant.yaml."""

    channels: dict[str, Channel] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list)
    smtp: SmtpServer | None = Field(default=None, description="This tenant's own relay for its email channels.")

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, value: dict[str, Channel]) -> dict[str, Channel]:
        for name in value:
            if not re.match(_IDENTIFIER, name):
                raise ValueError(f"channel name {name!r} must be lower_snake_case")
        return value

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> TenantNotifications:
        if not (info.context or {}).get("located_problems"):  # _parse reports them with file:line instead
            for _, message in self.reference_problems():
                raise ValueError(message)
        return self

    def reference_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """(YAML path, message) for every name that points nowhere."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        seen: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.name in seen:
                problems.append((("rules", i, "name"), f"duplicate rule name {rule.name!r}"))
            seen.add(rule.name)
            for j, channel in enumerate(rule.channels):
                if channel not in self.channels:
                    problems.append((("rules", i, "channels", j), f"unknown channel {channel!r}"))
        return problems


class Links(_Strict):
    api_base_url: str | None = Field(default=None, description="Prefix for the run link, e.g. https://api.example.")


class SlackPolicy(_Strict):
    allowed_hosts: list[str] = Field(
        default_factory=lambda: ["hooks.slack.com"], description="Hosts a webhook URL may point at (globs)."
    )


class DeliveryPolicy(_Strict):
    max_attempts: int = Field(default=6, ge=1, le=50, description="Attempts per notification before it is failed.")
    backoff_seconds: float = Field(default=2.0, ge=0, le=600, description="Wait before the second attempt.")
    max_backoff_seconds: float = Field(default=300.0, ge=0, le=3600)
    inline_wait_seconds: float = Field(
        default=15.0, ge=0, le=300, description="Longest wait inside one invocation; longer waits go back to Pub/Sub."
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=120, description="Per HTTP request / SMTP session.")

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return float(min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1)))


class OperatorAlerts(_Strict):
    channels: list[str] = Field(default_factory=list, description="Root channels for the notifier's own failures.")


class RootNotifications(TenantNotifications):
    """tenant_configs/_platform/notifications.yaml."""

    links: Links = Field(default_factory=Links)
    slack: SlackPolicy = Field(default_factory=SlackPolicy)
    delivery: DeliveryPolicy = Field(default_factory=DeliveryPolicy)
    operator_alerts: OperatorAlerts = Field(default_factory=OperatorAlerts)

    def reference_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        problems = super().reference_problems()
        for i, channel in enumerate(self.operator_alerts.channels):
            if channel not in self.channels:
                problems.append((("operator_alerts", "channels", i), f"unknown channel {channel!r}"))
        return problems


# ------------------------------------------------------------------------------------------------- loading
ConfigIssue = SourceIssue


class NotificationConfigError(TerminalError):
    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


def _without_variant_tag(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """pydantic puts the union variant after the channel name (channels.x.slack.field); YAML has no such level."""
    if len(loc) > 2 and loc[0] == "channels" and loc[2] in ("slack", "email", "outbox"):
        return loc[:2] + loc[3:]
    return loc


def _parse(path: Path, prefix: tuple[str, ...], model: type[_Strict]) -> Any:
    try:
        node, data = compose_and_load(read_config_text(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise NotificationConfigError(
            [ConfigIssue(str(path), line, col, "<document>", f"invalid YAML: {exc}")]
        ) from exc
    section: Any = data
    for part in prefix:
        section = section.get(part) if isinstance(section, dict) else None
    if section is None:
        return None
    if not isinstance(section, dict):
        line, col = locate(node, prefix)
        raise NotificationConfigError([ConfigIssue(str(path), line, col, key_path(prefix), "must be a mapping")])
    try:
        config = model.model_validate(section, context={"located_problems": True})
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            loc = prefix + _without_variant_tag(tuple(err["loc"]))
            line, col = locate(node, loc)
            issues.append(
                ConfigIssue(str(path), line, col, key_path(loc), str(err["msg"]).removeprefix("Value error, "))
            )
        raise NotificationConfigError(sorted(set(issues), key=lambda i: (i.line, i.column, i.key))) from exc
    problems = config.reference_problems() if isinstance(config, TenantNotifications) else []
    if problems:
        located = [(prefix + loc, message) for loc, message in problems]
        raise NotificationConfigError(
            [ConfigIssue(str(path), *locate(node, loc), key_path(loc), message) for loc, message in located]
        )
    return config


_cache: dict[tuple[str, int], Any] = {}
_cache_lock = threading.Lock()


def _cached(path: Path, prefix: tuple[str, ...], model: type[_Strict]) -> Any:
    """Parsed once per file version: the notifier reads the config for every event."""
    key = (str(path), path.stat().st_mtime_ns)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    value = _parse(path, prefix, model)
    with _cache_lock:
        if len(_cache) > 256:
            _cache.clear()
        _cache[key] = value
    return value


def root_config_path(config_dir: Path) -> Path:
    return config_dir / ROOT_FILE


def tenant_config_path(config_dir: Path, tenant_id: str) -> Path:
    if not re.match(_IDENTIFIER, tenant_id):
        raise TerminalError(f"invalid tenant id {tenant_id!r}")
    return config_dir / tenant_id / "tenant.yaml"


def load_root(config_dir: Path) -> RootNotifications:
    """The root config; an absent file means no root rules and default policies."""
    path = root_config_path(config_dir)
    if not path.is_file():
        return RootNotifications()
    loaded = _cached(path, (), RootNotifications)
    return loaded if isinstance(loaded, RootNotifications) else RootNotifications()


def load_tenant(config_dir: Path, tenant_id: str) -> TenantNotifications | None:
    """A tenant's `notifications:` section, or None when it has none (the root rules then apply)."""
    path = tenant_config_path(config_dir, tenant_id)
    if not path.is_file():
        return None
    loaded = _cached(path, ("notifications",), TenantNotifications)
    return loaded if isinstance(loaded, TenantNotifications) else None


def validate_all(config_dir: Path) -> tuple[int, list[ConfigIssue]]:
    """Check the root file and every tenant's section; returns (files checked, issues)."""
    files = [root_config_path(config_dir)] if root_config_path(config_dir).is_file() else []
    files += sorted(p for p in config_dir.glob("*/tenant.yaml") if not p.parent.name.startswith("_"))
    issues: list[ConfigIssue] = []
    for path in files:
        try:
            if path.parent.name == PLATFORM:
                _parse(path, (), RootNotifications)
            else:
                _parse(path, ("notifications",), TenantNotifications)
        except NotificationConfigError as exc:
            issues.extend(exc.issues)
    return len(files), issues
