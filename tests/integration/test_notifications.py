"""Notifications end to end on the embedded runtime, with a real SMTP server (aiosmtpd, STARTTLS + AUTH) and a local
Slack webhook sink: runs go through the api function, the engine publishes status events, the notifier function
routes them per tenant and sends; nothing is mocked."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from shared.contracts import topics
from shared.contracts.envelope import OutboundMessage
from shared.contracts.messages import StatusEvent
from shared.notify import event_path, list_deliveries
from shared.runtime.settings import Settings
from shared.secrets.store import put_secret
from tests.conftest import run_to_end
from tests.integration.notify_servers import SMTP_PASSWORD, SMTP_USER, SlackSink, SmtpServer, start_smtp

TESTCO_HOOK = "/services/T0TESTCO/B0ALERTS/testco-token"
OPS_HOOK = "/services/T0PLATFORM/B0OPS/ops-token"
API = "https://api.cloudact.test"


@pytest.fixture
def slack() -> Iterator[SlackSink]:
    sink = SlackSink()
    yield sink
    sink.close()


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = start_smtp(tmp_path)
    yield server
    server.controller.stop()


def write_root_config(config_dir: Path, smtp: SmtpServer, **delivery: Any) -> None:
    """The platform config of these tests: SMTP relay = the local aiosmtpd, Slack allowed on 127.0.0.1."""
    root = {
        "links": {"api_base_url": API},
        "smtp": {
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "starttls",
            "username": SMTP_USER,
            "password_secret": "smtp_password",
            "from": "CloudAct alerts <alerts@cloudact.test>",
            "ca_file": smtp.ca_file,
        },
        "slack": {"allowed_hosts": ["127.0.0.1"]},
        "delivery": {
            "max_attempts": 4,
            "backoff_seconds": 0.05,
            "max_backoff_seconds": 0.2,
            "inline_wait_seconds": 3,
            "timeout_seconds": 3,
            **delivery,
        },
        "channels": {
            "ops_slack": {"type": "slack", "webhook_secret": "ops_slack_webhook", "mentions": ["@channel"]},
            "ops_email": {"type": "email", "to": ["ops@cloudact.test"]},
        },
        "rules": [
            {"name": "failures", "events": ["run.failed", "run.timed_out"], "channels": ["ops_slack", "ops_email"]}
        ],
        "operator_alerts": {"channels": ["ops_email"]},
    }
    (config_dir / "_platform" / "notifications.yaml").write_text(yaml.safe_dump(root, sort_keys=False))


@pytest.fixture
def notify_runtime(make_runtime: Any, config_dir: Path, slack: SlackSink, smtp: SmtpServer) -> Any:
    """A factory: root config written, runtime started, the tenant and platform secrets set."""

    def make(runtime_kwargs: dict[str, Any] | None = None, **delivery: Any) -> Any:
        write_root_config(config_dir, smtp, **delivery)
        runtime = make_runtime(**(runtime_kwargs or {}))
        ctx = runtime.context
        put_secret(ctx, "testco", "slack_webhook", slack.url(TESTCO_HOOK).encode())
        put_secret(ctx, "_platform", "ops_slack_webhook", slack.url(OPS_HOOK).encode())
        put_secret(ctx, "_platform", "smtp_password", SMTP_PASSWORD.encode())
        return runtime

    return make


def _field_texts(payload: dict[str, Any]) -> str:
    parts = [payload["text"]]
    for block in payload["blocks"]:
        if "text" in block:
            parts.append(block["text"]["text"])
        parts += [f["text"] for f in block.get("fields", [])]
        parts += [e["text"] for e in block.get("elements", [])]
    return "\n".join(parts)


def test_failed_run_sends_one_slack_post_and_one_email_with_what_on_call_needs(
    notify_runtime: Any, slack: SlackSink, smtp: SmtpServer
) -> None:
    runtime = notify_runtime({"duplicate_deliveries": 2})  # every message (events too) delivered twice
    run = run_to_end(runtime, "testco", "broken")
    run_id = run["run_id"]
    assert run["status"] == "FAILED"

    posts = slack.accepted(TESTCO_HOOK)
    assert len(posts) == 1, posts
    payload = posts[0]
    assert payload["blocks"][0]["type"] == "header"
    assert payload["blocks"][0]["text"]["text"].endswith("testco/broken failed")
    text = _field_texts(payload)
    assert payload["text"].startswith("<!here> <@U024BE7LH> ")  # mentions, for an error
    for expected in (
        "*Tenant*\ntestco",
        "*Pipeline*\nbroken",
        f"*Run*\n{run_id}",
        "*Failed step*\nextract",
        "*Duration*\n",
        "step extract is configured to fail (fail_terminal)",
        f"`cloudact runs show {run_id}`",
        f"`GET {API}/api/v1/tenants/testco/metadata/executions/{run_id}`",
    ):
        assert expected in text, expected
    assert not slack.attempts(OPS_HOOK)  # the tenant's rule matched: the root rule does not apply

    assert len(smtp.received) == 1
    mail = smtp.received[0]
    assert mail.tls and mail.authenticated  # the server refuses mail before STARTTLS + AUTH anyway
    assert sorted(mail.rcpt_tos) == ["data-team@testco.example", "oncall@testco.example"]
    assert mail.message["Subject"] == "[ALERT] testco/broken failed"
    assert mail.message["From"] == "CloudAct alerts <alerts@cloudact.test>"
    assert mail.message.get_content_type() == "multipart/alternative"
    body = mail.text()
    assert f"Run {run_id} failed at step extract after" in body
    assert re.search(r"Failed step:\s+extract", body) and re.search(r"Duration:\s+\d+\.\d s", body)
    assert f"cloudact runs show {run_id}" in body and "fail_terminal" in body
    assert "<table" in mail.html() and run_id in mail.html()

    log = list_deliveries(runtime.context, "testco", run_id)
    assert sorted((d["channel"], d["status"], d["attempts"]) for d in log) == [
        ("alerts_slack", "sent", 1),
        ("oncall_email", "sent", 1),
    ]
    targets = {d["channel"]: d["target"] for d in log}
    assert targets == {
        "alerts_slack": "slack 127.0.0.1",
        "oncall_email": f"email oncall@testco.example, data-team@testco.example via 127.0.0.1:{smtp.port}",
    }

    out = CliRunner().invoke(
        _cli(), ["notifications", "list", "--run", run_id], env=_cli_env(runtime.settings), catch_exceptions=False
    )
    assert out.exit_code == 0
    assert out.output.count("SENT (1 attempt)") == 2 and "slack 127.0.0.1" in out.output


def _cli() -> Any:
    from shared.cli.main import cli

    return cli


def _cli_env(settings: Settings) -> dict[str, str]:
    return {"CLOUDACT_HOME": str(settings.home), "CLOUDACT_CONFIG_DIR": str(settings.config_dir)}


def test_duplicate_event_sends_nothing(notify_runtime: Any, slack: SlackSink, smtp: SmtpServer) -> None:
    runtime = notify_runtime()
    run = run_to_end(runtime, "testco", "broken")
    state = runtime.context.state
    failed_id = f"{run['run_id']}/-/run.failed/0"
    record = state.get(event_path(failed_id))
    assert record is not None and record["notified"] is True
    before = sorted((d["delivery_id"], d["status"], d["updated_at"]) for d in list_deliveries(runtime.context, None))
    event = StatusEvent.model_validate(record)

    def redeliver() -> None:
        runtime.bus.publish(topics.RUN_EVENTS, [OutboundMessage(event.to_bytes(), {"tenant_id": "testco"})])
        assert runtime.wait_idle(10)

    redeliver()  # a plain duplicate: the event is known and done
    # a duplicate after a crash that lost the "notified" mark: each notification is still deduplicated on its own
    current = state.get_versioned(event_path(failed_id))
    assert current is not None and state.update_if(event_path(failed_id), {"notified": False}, current.version)
    redeliver()

    assert len(slack.accepted(TESTCO_HOOK)) == 1 and len(slack.requests) == 1
    assert len(smtp.received) == 1
    after = sorted((d["delivery_id"], d["status"], d["updated_at"]) for d in list_deliveries(runtime.context, None))
    assert after == before


def test_slack_500_is_retried_then_succeeds(notify_runtime: Any, slack: SlackSink, smtp: SmtpServer) -> None:
    runtime = notify_runtime()
    slack.script(TESTCO_HOOK, (500, "internal_error"), (503, "service_unavailable"))
    run = run_to_end(runtime, "testco", "broken")

    assert [r.status for r in slack.attempts(TESTCO_HOOK)] == [500, 503, 200]
    assert len(slack.accepted(TESTCO_HOOK)) == 1
    slack_log = next(
        d for d in list_deliveries(runtime.context, "testco", run["run_id"]) if d["channel"] == "alerts_slack"
    )
    assert (slack_log["status"], slack_log["attempts"], slack_log["error"]) == ("sent", 3, None)
    assert len(smtp.received) == 1  # the email did not wait for Slack's trouble, nor was it sent twice


def test_slack_429_waits_for_retry_after(notify_runtime: Any, slack: SlackSink) -> None:
    runtime = notify_runtime()
    slack.script(TESTCO_HOOK, (429, "rate_limited", {"Retry-After": "1"}))
    run_to_end(runtime, "testco", "broken")

    first, second = slack.attempts(TESTCO_HOOK)
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 1.0  # the backoff alone would have been 0.05 s


def test_cooldown_suppresses_the_repeat_and_logs_it(notify_runtime: Any, slack: SlackSink, smtp: SmtpServer) -> None:
    runtime = notify_runtime()
    first = run_to_end(runtime, "testco", "broken")
    second = run_to_end(runtime, "testco", "broken")
    assert second["status"] == "FAILED"

    assert len(slack.accepted(TESTCO_HOOK)) == 1 and len(smtp.received) == 1
    suppressed = list_deliveries(runtime.context, "testco", second["run_id"])
    assert sorted(d["status"] for d in suppressed) == ["suppressed", "suppressed"]
    assert all(d["error"].startswith("cooldown: rule failures already notified") for d in suppressed)
    assert all("quiet until" in d["error"] for d in suppressed)
    sent = list_deliveries(runtime.context, "testco", first["run_id"])
    assert [d["status"] for d in sent] == ["sent", "sent"]

    out = CliRunner().invoke(
        _cli(), ["notifications", "list", "--run", second["run_id"]], env=_cli_env(runtime.settings)
    )
    assert out.exit_code == 0 and out.output.count("SUPPRESSED") == 2 and "cooldown" in out.output


def test_tenant_without_config_falls_back_to_root(
    notify_runtime: Any, config_dir: Path, slack: SlackSink, smtp: SmtpServer
) -> None:
    plain = config_dir / "plainco"
    (plain / "pipelines").mkdir(parents=True)
    (plain / "tenant.yaml").write_text("tenant_id: plainco\nname: Plain Co\nplan: starter\n")
    shutil.copy(config_dir / "testco" / "pipelines" / "broken.yaml", plain / "pipelines" / "broken.yaml")
    runtime = notify_runtime()

    run = run_to_end(runtime, "plainco", "broken")
    assert run["status"] == "FAILED"
    posts = slack.accepted(OPS_HOOK)
    assert len(posts) == 1 and "plainco/broken failed" in posts[0]["text"]
    assert posts[0]["text"].startswith("<!channel> ")
    assert [m.rcpt_tos for m in smtp.received] == [["ops@cloudact.test"]]
    assert not slack.attempts(TESTCO_HOOK)
    log = list_deliveries(runtime.context, "plainco", run["run_id"])
    assert sorted((d["rule"], d["channel"], d["status"]) for d in log) == [
        ("root.failures", "root.ops_email", "sent"),
        ("root.failures", "root.ops_slack", "sent"),
    ]


def test_permanent_slack_error_is_recorded_once_and_not_retried(notify_runtime: Any, slack: SlackSink) -> None:
    runtime = notify_runtime()
    slack.script(TESTCO_HOOK, (404, "no_service"))
    run = run_to_end(runtime, "testco", "broken")

    assert len(slack.attempts(TESTCO_HOOK)) == 1
    entry = next(d for d in list_deliveries(runtime.context, "testco", run["run_id"]) if d["channel"] == "alerts_slack")
    assert (entry["status"], entry["attempts"], entry["error"]) == ("failed", 1, "Slack answered HTTP 404: no_service")
    assert runtime.bus.stats.dead_lettered == 0


def test_cli_sends_a_test_message_on_a_channel(notify_runtime: Any, slack: SlackSink, smtp: SmtpServer) -> None:
    runtime = notify_runtime()
    env = _cli_env(runtime.settings)
    out = CliRunner().invoke(_cli(), ["notifications", "test", "testco", "alerts_slack"], env=env)
    assert out.exit_code == 0 and out.output.startswith("sent: slack 127.0.0.1")
    assert "channel alerts_slack of testco works" in _field_texts(slack.accepted(TESTCO_HOOK)[0])
    out = CliRunner().invoke(_cli(), ["notifications", "test", "testco", "root.ops_email"], env=env)
    assert out.exit_code == 0 and smtp.to("ops@cloudact.test")
    slack.script(TESTCO_HOOK, (403, "invalid_token"))
    out = CliRunner().invoke(_cli(), ["notifications", "test", "testco", "alerts_slack"], env=env)
    assert out.exit_code == 1 and "Slack answered HTTP 403: invalid_token" in out.output


def test_notifier_that_keeps_failing_is_dead_lettered_and_operators_are_alerted(
    notify_runtime: Any, slack: SlackSink, smtp: SmtpServer
) -> None:
    # Slack is down for longer than Pub/Sub keeps retrying: every notifier invocation nacks, the event dead-letters
    runtime = notify_runtime({"max_delivery_attempts": 3}, max_attempts=50, inline_wait_seconds=0)
    slack.script(TESTCO_HOOK, *[(503, "service_unavailable")] * 50)
    run = run_to_end(runtime, "testco", "broken")

    assert runtime.bus.stats.dead_lettered >= 1
    entry = next(d for d in list_deliveries(runtime.context, "testco", run["run_id"]) if d["channel"] == "alerts_slack")
    assert entry["status"] == "failed" and entry["error"].startswith(
        "notifier gave up: dead-lettered after 3 deliveries"
    )
    assert 1 <= entry["attempts"] <= 3
    alerts = smtp.to("ops@cloudact.test")
    assert len(alerts) == 1
    assert alerts[0].message["Subject"] == "[ALERT] notifier gave up on a run.failed event of testco"
    assert run["run_id"] in alerts[0].text() and "dead-lettered" in alerts[0].text()
    assert len(smtp.to("oncall@testco.example")) == 1  # the tenant's email had gone out on the first try


def test_notify_steps_send_on_the_tenant_channels_exactly_once(
    notify_runtime: Any, slack: SlackSink, smtp: SmtpServer
) -> None:
    runtime = notify_runtime({"duplicate_deliveries": 2})
    run = run_to_end(runtime, "testco", "notify_steps")
    statuses = {s["stage_id"]: s["status"] for s in run["stages"]}
    assert statuses == {"load": "FAILED", "tell_slack": "SUCCEEDED", "mail_summary": "SUCCEEDED"}

    log = list_deliveries(runtime.context, "testco", run["run_id"])
    assert sorted((d["source"], d["channel"], d["status"]) for d in log) == [
        ("event", "alerts_slack", "sent"),
        ("event", "oncall_email", "sent"),
        ("step", "alerts_slack", "sent"),
        ("step", "oncall_email", "sent"),
    ]
    posts = [_field_texts(p) for p in slack.accepted(TESTCO_HOOK)]
    assert len(posts) == 2
    step_post = next(p for p in posts if "The load of notify_steps" in p)
    assert f"The load of notify_steps for {run['run_date']} failed (run {run['run_id']})." in step_post
    assert "*Failed step load*\nstep load is configured to fail" in step_post
    subjects = sorted(str(m.message["Subject"]) for m in smtp.received)
    assert subjects == [
        "[ALERT] testco/notify_steps failed",
        f"[ALERT] testco/notify_steps summary for {run['run_date']}",
    ]


def test_demo_ends_with_where_notifications_went(settings: Settings, capsys: Any) -> None:
    """No secrets, no SMTP: the shipped configs route acme's success email to the local outbox."""
    from shared.cli.embedded_run import run_and_follow

    started = time.monotonic()
    status = run_and_follow(settings, "acme", "daily_sales", {}, None, 60.0, True)
    assert status == "SUCCEEDED" and time.monotonic() - started < 60
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("  notifications: sales_team QUEUED in the local outbox ") and last.rstrip().endswith(")")
    listed = CliRunner().invoke(_cli(), ["notifications", "list"], env=_cli_env(settings), catch_exceptions=False)
    assert "QUEUED (1 attempt)" in listed.output and "SENT" not in listed.output, listed.output
    assert "not sent (no channel configured)" in " ".join(listed.output.split())
    files = sorted((settings.home / "outbox").iterdir())
    assert len(files) == 1 and files[0].suffix == ".eml" and files[0].name in last
    eml = files[0].read_text()
    assert "Subject: [INFO] acme/daily_sales succeeded" in eml and "To: sales-team@acme.example" in eml
