"""`notify.slack`: post a message from the pipeline to one of the tenant's Slack channels.

config: {channel: <tenant.yaml notifications channel>, message: "...{run_id}...", subject?, severity?}
Use `trigger: on_failure` to alert when an upstream step failed; the failed steps and their errors are included.
See shared/processors/notify_steps.py for the placeholders and the exactly-once guarantee.
"""

from __future__ import annotations

from typing import Any

from shared.pipelines.spec import StepSpec
from shared.processors.base import StepContext, StepResult
from shared.processors.notify_steps import send_step_notification, validate_step_config


class NotifySlack:
    def run(self, step: StepSpec, ctx: StepContext) -> StepResult:
        return send_step_notification(step, ctx, "slack")


def validate_step(step: StepSpec, scope: Any) -> list[tuple[tuple[str | int, ...], str]]:
    return validate_step_config(step, scope)


PROCESSOR = NotifySlack()
