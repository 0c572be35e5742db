"""What an alert says and how each channel renders it: facts, Block Kit, multipart email, safe templating."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from email.utils import format_datetime
from typing import Any

import pytest

from shared.contracts.messages import StatusEvent
from shared.errors import TerminalError
from shared.notify.config import Links, SlackChannel
from shared.notify.errors import ChannelError
from shared.notify.mail import build_email
from shared.notify.message import event_message, format_duration
from shared.notify.slack import check_webhook_url, retry_after_seconds, slack_payload
from shared.processors.notify_steps import render_template

RUN = {
    "run_id": "run_abc",
    "tenant_id": "acme",
    "failed_stage": "load_orders",
    "run_date": "2026-11-25",
    "trigger": {"type": "schedule"},
    "duration_ms": 83_500,
}


def failed_event(**overrides: Any) -> StatusEvent:
    fields: dict[str, Any] = {
        "event_id": "run_abc/-/run.failed/0",
        "type": "run.failed",
        "tenant_id": "acme",
        "pipeline_id": "daily_sales",
        "run_id": "run_abc",
        "status": "FAILED",
        "error": "stage load_orders: <script>alert(1)</script> & more",
        "duration_ms": 83_500,
        "occurred_at": datetime(2026, 11, 25, 3, 0, tzinfo=UTC),
    }
    return StatusEvent.model_validate({**fields, **overrides})


def test_failure_message_carries_what_on_call_needs() -> None:
    msg = event_message(failed_event(), RUN, Links(api_base_url="https://api.example/"))
    facts = dict(msg.facts)
    assert msg.subject == "[ALERT] acme/daily_sales failed"
    assert msg.headline == "Run run_abc failed at step load_orders after 1 min 23 s."
    assert (facts["Tenant"], facts["Pipeline"], facts["Run"], facts["Failed step"]) == (
        "acme",
        "daily_sales",
        "run_abc",
        "load_orders",
    )
    assert (facts["Duration"], facts["Run date"], facts["Trigger"]) == ("1 min 23 s", "2026-11-25", "schedule")
    assert msg.inspect == (
        "cloudact runs show run_abc",
        "GET https://api.example/api/v1/tenants/acme/metadata/executions/run_abc",
    )
    text = msg.to_text()
    assert "Failed step: load_orders" in text and "<script>" in text  # plain text is plain


def test_failed_step_is_derived_from_the_error_when_the_run_document_is_missing() -> None:
    msg = event_message(failed_event(), None, Links())
    assert dict(msg.facts)["Failed step"] == "load_orders"
    assert msg.inspect[1] == "GET /api/v1/tenants/acme/metadata/executions/run_abc"


def test_success_has_no_error_and_quota_events_show_their_details() -> None:
    ok = event_message(failed_event(type="run.succeeded", status="SUCCEEDED", error=None), RUN, Links())
    assert ok.severity == "info" and ok.error is None and ok.headline == "Run run_abc succeeded in 1 min 23 s."
    assert "Failed step" not in dict(ok.facts)
    quota = event_message(
        failed_event(type="quota.warning", run_id="", status="WARNING", details={"runs_today": 40, "limit": 50}),
        None,
        Links(),
    )
    assert quota.severity == "warning" and quota.title == "acme/daily_sales quota warning"
    assert dict(quota.facts)["Runs today"] == "40" and quota.inspect == ("cloudact runs list --tenant acme",)


def test_durations_read_like_a_human_wrote_them() -> None:
    assert [format_duration(ms) for ms in (420, 59_900, 61_000, 3_600_000 * 2 + 60_000)] == [
        "0.4 s",
        "59.9 s",
        "1 min 1 s",
        "2 h 1 min",
    ]


def test_slack_payload_is_block_kit_with_mentions_and_escaped_text() -> None:
    channel = SlackChannel(type="slack", webhook_secret="hook", mentions=["@here", "U024BE7LH", "S0614TZR7"])
    payload = slack_payload(event_message(failed_event(), RUN, Links()), channel)
    assert payload["text"] == "<!here> <@U024BE7LH> <!subteam^S0614TZR7> [ALERT] acme/daily_sales failed"
    types = [b["type"] for b in payload["blocks"]]
    assert types == ["header", "section", "section", "section", "context"]
    assert payload["blocks"][0]["text"] == {
        "type": "plain_text",
        "text": ":rotating_light: acme/daily_sales failed",
        "emoji": True,
    }
    fields = [f["text"] for f in payload["blocks"][2]["fields"]]
    assert "*Failed step*\nload_orders" in fields and len(fields) <= 10
    error = payload["blocks"][3]["text"]["text"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in error and "<script>" not in error
    quiet = SlackChannel(type="slack", webhook_secret="hook", mentions=["@here"], mention_min_severity="error")
    ok = event_message(failed_event(type="run.succeeded", status="SUCCEEDED"), RUN, Links())
    assert "<!here>" not in slack_payload(ok, quiet)["text"]  # no one is paged for a success


def test_email_is_multipart_with_escaped_html_and_a_stable_message_id() -> None:
    msg = event_message(failed_event(), RUN, Links())
    first = build_email(msg, "Alerts <alerts@example.com>", ["a@example.com", "b@example.com"], "delivery-1")
    again = build_email(msg, "Alerts <alerts@example.com>", ["a@example.com", "b@example.com"], "delivery-1")
    parsed = message_from_bytes(first.as_bytes(), policy=default_policy)
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed["To"] == "a@example.com, b@example.com" and parsed["Auto-Submitted"] == "auto-generated"
    assert first["Message-ID"] == again["Message-ID"]  # a re-send after a crash is recognisably the same mail
    html = parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert "load_orders" in parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://hooks.slack.com/services/T/B/x", None),
        ("http://127.0.0.1:9999/services/T/B/x", None),
        ("http://hooks.slack.com/services/T/B/x", "refusing plain http"),
        ("https://169.254.169.254/computeMetadata/v1/", "not in the root config's slack.allowed_hosts"),
        ("https://hooks.slack.com.evil.example/x", "not in the root config's slack.allowed_hosts"),
        ("ftp://hooks.slack.com/x", "not an http(s) URL"),
        ("not a url", "not an http(s) URL"),
    ],
)
def test_webhook_urls_are_limited_to_allowed_hosts(url: str, problem: str | None) -> None:
    allowed = ["hooks.slack.com", "127.0.0.1"]
    if problem is None:
        assert check_webhook_url(url, allowed) in allowed
        return
    with pytest.raises(ChannelError) as caught:
        check_webhook_url(url, allowed)
    assert problem in str(caught.value) and not caught.value.transient
    assert "/services/" not in str(caught.value)  # the secret part of the URL is never echoed


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    later = retry_after_seconds(format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True))
    assert later is not None and 25 <= later <= 31


def test_step_templates_substitute_known_names_only() -> None:
    values = {"run_id": "run_1", "pipeline_id": "p"}
    assert render_template("{pipeline_id} run {run_id}", values, "step s") == "p run run_1"
    assert render_template("{run_id.__class__} {0}", values, "step s") == "{run_id.__class__} {0}"  # no format()
    with pytest.raises(TerminalError, match=r"unknown placeholder \{secret\}"):
        render_template("{secret}", values, "step s")


def test_notify_step_config_problems_are_found_before_any_run() -> None:
    from shared.pipelines.spec import StepSpec
    from shared.pipelines.templating import ValidationScope
    from shared.processors.registry import get_validator

    step = StepSpec.model_validate(
        {"step_id": "tell", "ps_type": "notify.slack", "config": {"chanel": "x", "message": "{who} {day}"}}
    )
    scope = ValidationScope(parameter_types={"day": "date"})
    assert [(i.path, i.message) for i in get_validator("notify.slack")(step, scope)] == [
        (("config", "chanel"), "unknown key; allowed: channel, message, severity, subject"),
        (("config", "channel"), "required: a channel name from tenant.yaml notifications.channels"),
        (
            ("config", "message"),
            "unknown placeholder {who}; known: day, pipeline_id, run_date, run_id, stage_id, tenant_id",
        ),
    ]
