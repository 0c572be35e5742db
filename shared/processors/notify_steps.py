"""`notify.slack` / `notify.email` pipeline steps: a message from the pipeline, sent on one of the tenant's channels.

config:
  channel: <name>        a channel from the tenant's tenant.yaml `notifications.channels` (slack for notify.slack,
                         email for notify.email; an `outbox` channel works for either)
  message: <text>        placeholders: {tenant_id} {pipeline_id} {run_id} {run_date} {stage_id}, the run's
                         parameters and the pipeline's variables; anything else is an error
  subject: <text>        optional title (same placeholders)
  severity: info | warning | error   (default: error when a step before this one failed, info otherwise)

A retried stage does not send twice: the delivery is keyed by (run, step, channel). The message lists the run's
failed steps with their errors, so an `on_failure` step says what went wrong without templating. An email is multipart
(text + HTML) and goes through the channel's SMTP relay (STARTTLS + auth).
"""

from __future__ import annotations

import re
import time
from typing import Any, Literal

from shared.contracts.state_paths import stages_collection
from shared.contracts.states import FAILURES
from shared.errors import TerminalError, TransientError
from shared.notify import load_configs
from shared.notify.config import SEVERITY_RANK, OutboxChannel, Severity
from shared.notify.delivery import Delivery, deliver, delivery_id
from shared.notify.message import Message, inspect_lines
from shared.notify.routing import tenant_channel
from shared.pipelines.spec import StepIssue, StepSpec
from shared.pipelines.templating import ValidationScope
from shared.processors.base import StepContext, StepResult
from shared.processors.contract import ProcessorSpec, settings_doc

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_KEYS = frozenset({"channel", "message", "subject", "severity"})


def render_template(template: str, values: dict[str, Any], what: str) -> str:
    """Substitute `{name}` from `values` only: no attribute access, no format specs (unlike str.format)."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise TerminalError(f"{what}: unknown placeholder {{{name}}}; known: {', '.join(sorted(values))}")
        return str(values[name])

    return _PLACEHOLDER.sub(sub, template)


ChannelKind = Literal["slack", "email"]


class NotifyStep:
    """notify.slack and notify.email: the same step, checked against the kind of the channel it names."""

    def __init__(self, kind: ChannelKind) -> None:
        self.kind: ChannelKind = kind

    def run(self, step: StepSpec, ctx: StepContext) -> StepResult:
        return send_step_notification(step, ctx, self.kind)


def send_step_notification(step: StepSpec, sctx: StepContext, kind: ChannelKind) -> StepResult:
    cfg = step.config
    unknown = sorted(set(cfg) - _KEYS)
    if unknown:
        raise TerminalError(f"step {step.step_id}: unknown config keys {', '.join(unknown)}; allowed: {sorted(_KEYS)}")
    channel_name, text = cfg.get("channel"), cfg.get("message")
    if not isinstance(channel_name, str) or not channel_name:
        raise TerminalError(f"step {step.step_id}: config.channel (a channel name from tenant.yaml) is required")
    if not isinstance(text, str) or not text.strip():
        raise TerminalError(f"step {step.step_id}: config.message is required")
    tenant, root, problem = load_configs(sctx.settings.config_dir, sctx.tenant_id)
    target = tenant_channel(sctx.tenant_id, channel_name, tenant, root)
    if target.type != kind and not isinstance(target.config, OutboxChannel):
        raise TerminalError(f"step {step.step_id}: channel {channel_name!r} is a {target.type} channel, not {kind}")
    values: dict[str, Any] = {**sctx.variables, **sctx.parameters}
    values.update(
        tenant_id=sctx.tenant_id,
        pipeline_id=sctx.pipeline_id,
        run_id=sctx.run_id,
        run_date=sctx.run_date.isoformat(),
        stage_id=sctx.stage_id,
    )
    what = f"step {step.step_id}"
    failed = [
        s for s in (doc for _, doc in sctx.state.list(stages_collection(sctx.run_id))) if s.get("status") in FAILURES
    ]
    severity: Severity = cfg.get("severity") or ("error" if failed else "info")
    if severity not in SEVERITY_RANK:
        raise TerminalError(f"{what}: severity must be info, warning or error, got {severity!r}")
    facts = [("Tenant", sctx.tenant_id), ("Pipeline", sctx.pipeline_id), ("Run", sctx.run_id)]
    facts += [("Run date", sctx.run_date.isoformat()), ("Step", sctx.stage_id)]
    facts += [(f"Failed step {s['stage_id']}", str(s.get("error") or s["status"])[:500]) for s in failed[:5]]
    subject = cfg.get("subject") or f"{sctx.tenant_id}/{sctx.pipeline_id}: {step.name or step.step_id}"
    message = Message(
        title=render_template(str(subject), values, what),
        severity=severity,
        headline=render_template(text, values, what),
        facts=tuple(facts),
        inspect=inspect_lines(sctx.tenant_id, sctx.run_id, root.links),
        notes=(problem,) if problem else (),
    )
    d = Delivery(
        delivery_id=delivery_id(sctx.run_id, sctx.stage_id, "step", target.key),
        tenant_id=sctx.tenant_id,
        source="step",
        channel=target,
        message=message,
        run_id=sctx.run_id,
        pipeline_id=sctx.pipeline_id,
    )
    deadline = time.monotonic() + max(0.0, min(root.delivery.inline_wait_seconds, sctx.seconds_left() - 5))
    outcome = deliver(sctx.runtime, d, root, deadline)
    if outcome.status == "failed":
        doc = sctx.state.get(f"notifications/{d.delivery_id}") or {}
        raise TerminalError(f"{what}: notification failed: {doc.get('error', 'see cloudact notifications list')}")
    if outcome.status == "later":
        raise TransientError(f"{what}: notification to {target.key} will be retried", outcome.retry_after)
    return StepResult(rows_out=0, details={"delivery_id": d.delivery_id, "status": outcome.status})


def validate_step_config(step: StepSpec, scope: ValidationScope) -> list[StepIssue]:
    """Problems `cloudact pipelines validate` can report at the step's file:line before any run."""
    cfg = step.config
    problems = [
        StepIssue(("config", key), f"unknown key; allowed: {', '.join(sorted(_KEYS))}")
        for key in sorted(set(cfg) - _KEYS)
    ]
    if not isinstance(cfg.get("channel"), str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", cfg["channel"]):
        problems.append(
            StepIssue(("config", "channel"), "required: a channel name from tenant.yaml notifications.channels")
        )
    if not isinstance(cfg.get("message"), str) or not cfg["message"].strip():
        problems.append(StepIssue(("config", "message"), "required: the text to send"))
    if "severity" in cfg and cfg["severity"] not in SEVERITY_RANK:
        problems.append(StepIssue(("config", "severity"), "must be info, warning or error"))
    known = {"tenant_id", "pipeline_id", "run_id", "run_date", "stage_id", *scope.parameter_types, *scope.variables}
    for key in ("message", "subject"):
        text = cfg.get(key)
        if isinstance(text, str):
            for name in _PLACEHOLDER.findall(text):
                if name not in known:
                    problems.append(
                        StepIssue(("config", key), f"unknown placeholder {{{name}}}; known: {', '.join(sorted(known))}")
                    )
    return problems


def _notify_spec(kind: ChannelKind, summary: str) -> ProcessorSpec:
    return ProcessorSpec(
        ps_type=f"notify.{kind}",
        summary=summary,
        processor=NotifyStep(kind),
        validate=validate_step_config,
        settings_doc=settings_doc(__doc__),
    )


SLACK_SPEC = _notify_spec("slack", "post a message from the pipeline to one of the tenant's Slack channels.")
EMAIL_SPEC = _notify_spec("email", "email a message from the pipeline through one of the tenant's email channels.")
