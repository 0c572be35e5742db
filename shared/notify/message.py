"""What an alert says, independent of the channel: built once per event, rendered as Slack blocks, email or text.

A failure message always carries what the person on call needs first: tenant, pipeline, run id, the failed step, the
error, the duration, and how to look at the run (`cloudact runs show RUN_ID` and the API path).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, replace
from typing import Any

from shared.contracts.messages import StatusEvent
from shared.notify.config import Links, Severity
from shared.notify.routing import severity_of

SEVERITY_LABEL: dict[str, str] = {"info": "INFO", "warning": "WARNING", "error": "ALERT"}
_TITLES: dict[str, str] = {
    "run.started": "started",
    "run.succeeded": "succeeded",
    "run.failed": "failed",
    "run.cancelled": "was cancelled",
    "run.timed_out": "timed out",
    "stage.succeeded": "step {stage} succeeded",
    "stage.failed": "step {stage} failed",
    "stage.retrying": "step {stage} is being retried",
    "stage.timed_out": "step {stage} timed out",
    "stage.skipped": "step {stage} was skipped",
    "quota.warning": "quota warning",
    "quota.exceeded": "quota exceeded",
    "dq.failed": "data quality checks failed",
}
MAX_ERROR_CHARS = 2500


@dataclass(frozen=True)
class Message:
    title: str
    severity: Severity
    headline: str
    facts: tuple[tuple[str, str], ...] = ()
    error: str | None = None
    body: str | None = None
    inspect: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def subject(self) -> str:
        return f"[{SEVERITY_LABEL[self.severity]}] {self.title}"

    def with_note(self, note: str) -> Message:
        return replace(self, notes=(*self.notes, note))

    def to_text(self) -> str:
        lines = [self.subject, "", self.headline]
        if self.body:
            lines += ["", self.body]
        if self.facts:
            width = max(len(label) for label, _ in self.facts) + 2
            lines += [""] + [f"{label + ':':<{width}}{value}" for label, value in self.facts]
        if self.error:
            lines += ["", "Error:"] + ["  " + line for line in _clip(self.error).splitlines()]
        if self.inspect:
            lines += ["", "Inspect the run:"] + ["  " + line for line in self.inspect]
        if self.notes:
            lines += ["", *self.notes]
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        colour = {"error": "#b42318", "warning": "#b54708", "info": "#175cd3"}[self.severity]
        e = html.escape
        parts = [
            f'<h2 style="color:{colour};font-family:sans-serif">{e(self.subject)}</h2>',
            f'<p style="font-family:sans-serif">{e(self.headline)}</p>',
        ]
        if self.body:
            parts.append(f'<p style="font-family:sans-serif;white-space:pre-wrap">{e(self.body)}</p>')
        if self.facts:
            rows = "".join(
                f'<tr><th align="left" style="padding-right:16px">{e(label)}</th><td>{e(value)}</td></tr>'
                for label, value in self.facts
            )
            parts.append(f'<table style="font-family:sans-serif;border-collapse:collapse">{rows}</table>')
        if self.error:
            parts.append(f'<h3 style="font-family:sans-serif">Error</h3><pre>{e(_clip(self.error))}</pre>')
        if self.inspect:
            items = "".join(f"<li><code>{e(line)}</code></li>" for line in self.inspect)
            parts.append(f'<h3 style="font-family:sans-serif">Inspect the run</h3><ul>{items}</ul>')
        for note in self.notes:
            parts.append(f'<p style="font-family:sans-serif;color:#667085">{e(note)}</p>')
        return "<!doctype html><html><body>" + "".join(parts) + "</body></html>"


def _clip(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 20] + f"... ({len(text) - limit + 20} more chars)"


def format_duration(ms: int | float | None) -> str | None:
    if ms is None:
        return None
    seconds = float(ms) / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def inspect_lines(tenant_id: str, run_id: str | None, links: Links) -> tuple[str, ...]:
    if not run_id:
        return (f"cloudact runs list --tenant {tenant_id}",)
    path = f"/api/v1/tenants/{tenant_id}/metadata/executions/{run_id}"
    base = (links.api_base_url or "").rstrip("/")
    return (f"cloudact runs show {run_id}", f"GET {base}{path}")


def _failed_step(event: StatusEvent, run: dict[str, Any] | None) -> str | None:
    if event.stage_id and event.type.startswith("stage."):
        return event.stage_id
    if run and run.get("failed_stage"):
        return str(run["failed_stage"])
    error = event.error or (run or {}).get("error") or ""
    if error.startswith("stage ") and ":" in error:  # derive_run_status writes "stage <id>: <error>"
        return error[len("stage ") : error.index(":")]
    return None


def event_message(event: StatusEvent, run: dict[str, Any] | None, links: Links) -> Message:
    """The alert for a status event; `run` (the run document, when there is one) adds the failed step and timings."""
    severity = severity_of(event.type)
    where = f"{event.tenant_id}/{event.pipeline_id}" if event.pipeline_id else event.tenant_id
    what = _TITLES.get(event.type, event.type).format(stage=event.stage_id or "?")
    failed = _failed_step(event, run) if severity != "info" else None
    duration = format_duration(event.duration_ms if event.duration_ms is not None else (run or {}).get("duration_ms"))
    error = (event.error or (run or {}).get("error")) if severity != "info" else None
    if event.type.startswith("run.") and failed and severity == "error":
        headline = f"Run {event.run_id} {what} at step {failed}" + (f" after {duration}." if duration else ".")
    elif event.run_id:
        headline = f"Run {event.run_id} {what}" + (f" in {duration}." if duration and severity == "info" else ".")
    else:
        headline = f"{where}: {what}."
    facts: list[tuple[str, str]] = [("Tenant", event.tenant_id)]
    if event.pipeline_id:
        facts.append(("Pipeline", event.pipeline_id))
    if event.run_id:
        facts.append(("Run", event.run_id))
    if failed:
        facts.append(("Failed step", failed))
    if event.attempt:
        facts.append(("Attempt", str(event.attempt)))
    facts.append(("Status", event.status))
    if duration:
        facts.append(("Duration", duration))
    if run and run.get("run_date"):
        facts.append(("Run date", str(run["run_date"])))
    trigger = (run or {}).get("trigger") or {}
    if trigger.get("type"):
        facts.append(("Trigger", str(trigger["type"])))
    for key, value in list((event.details or {}).items())[:8]:
        facts.append((str(key).replace("_", " ").capitalize(), str(value)))
    facts.append(("Event", f"{event.type} at {event.occurred_at.isoformat(timespec='seconds')}"))
    return Message(
        title=f"{where} {what}",
        severity=severity,
        headline=headline,
        facts=tuple(facts),
        error=error,
        inspect=inspect_lines(event.tenant_id, event.run_id, links),
    )
