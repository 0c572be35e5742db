"""`notify.email`: email a message from the pipeline through one of the tenant's email channels.

config: {channel: <tenant.yaml notifications channel>, message: "...{run_id}...", subject?, severity?}
The email is multipart (text + HTML) and goes through the channel's SMTP relay (STARTTLS + auth).
See shared/processors/notify_steps.py for the placeholders and the exactly-once guarantee.
"""

from __future__ import annotations

from typing import Any

from shared.pipelines.spec import StepSpec
from shared.processors.base import StepContext, StepResult
from shared.processors.notify_steps import send_step_notification, validate_step_config


class NotifyEmail:
    def run(self, step: StepSpec, ctx: StepContext) -> StepResult:
        return send_step_notification(step, ctx, "email")


def validate_step(step: StepSpec, scope: Any) -> list[tuple[tuple[str | int, ...], str]]:
    return validate_step_config(step, scope)


PROCESSOR = NotifyEmail()
