"""Every Pub/Sub topic and subscription name the code uses, in one place (terraform/ declares the same names)."""

from __future__ import annotations

from typing import Final

RUN_REQUESTS: Final = "cdp-run-requests"
"""api / scheduled_trigger -> run_starter."""
STAGE_TASKS: Final = "cdp-stage-tasks"
"""run_starter / stage_worker -> stage_worker."""
RUN_EVENTS: Final = "cdp-run-events"
"""run and stage status events -> notifier."""
SCHEDULE_TICKS: Final = "cdp-schedule-ticks"
"""Cloud Scheduler -> scheduled_trigger."""
MAINTENANCE_TICKS: Final = "cdp-maintenance-ticks"
"""Cloud Scheduler -> maintenance."""
DEAD_LETTERS: Final = "cdp-dead-letters"
"""Every push subscription's dead-letter topic; maintenance reads it."""
JOB_EVENTS: Final = "cdp-job-events"
"""BigQuery job-completion audit log entries of our jobs (a Cloud Logging sink publishes them) -> stage_worker, which
starts that stage's next poll round at once (shared/runs/job_events.py). Nothing of ours publishes here."""

DEAD_LETTER_PULL_SUBSCRIPTION: Final = f"{DEAD_LETTERS}--inspect"
"""The dead-letter topic's retained pull subscription: what an operator lists, replays and purges."""

ALL_TOPICS: Final = (
    RUN_REQUESTS,
    STAGE_TASKS,
    RUN_EVENTS,
    SCHEDULE_TICKS,
    MAINTENANCE_TICKS,
    DEAD_LETTERS,
    JOB_EVENTS,
)

# Which function entry point consumes which topic. One push subscription per pair, named `<topic>--<function>`.
SUBSCRIBERS: Final[dict[str, str]] = {
    RUN_REQUESTS: "run_starter",
    STAGE_TASKS: "stage_worker",
    RUN_EVENTS: "notifier",
    SCHEDULE_TICKS: "scheduled_trigger",
    MAINTENANCE_TICKS: "maintenance",
    DEAD_LETTERS: "maintenance",
    JOB_EVENTS: "stage_worker",
}


def subscription_name(topic: str) -> str:
    return f"{topic}--{SUBSCRIBERS[topic].replace('_', '-')}"
