"""Offboarding a tenant on the embedded runtime (API and CLI): keys revoked, runs and schedules refused, the data
deleted only with the tenant id as confirmation, everything idempotent and audited."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner

from shared.contracts.messages import ScheduleTick
from shared.errors import TerminalError
from shared.scheduling.cron import CronSchedule
from shared.scheduling.trigger import trigger_scheduled_run
from shared.secrets.store import list_secret_names, put_secret
from shared.tenancy.audit import list_audit
from tests.conftest import auth, execute, run_to_end


def admin(runtime: Any) -> dict[str, str]:
    return {"X-Admin-Token": runtime.admin_token, "X-User-ID": "ops@example.com"}


def _datasets(runtime: Any, tenant: str) -> list[str]:
    return list(runtime.context.warehouse_for(tenant).list_datasets())


def test_offboarding_revokes_and_stops_and_deletes_only_when_confirmed(runtime: Any) -> None:
    ctx = runtime.context
    assert run_to_end(runtime, "acme", "daily_sales")["status"] == "SUCCEEDED"
    put_secret(ctx, "acme", "slack_webhook", b"https://hooks.example/x")
    datasets = _datasets(runtime, "acme")
    assert "acme_metadata" in datasets and len(datasets) >= 2
    key_headers = auth(runtime, "acme")

    answer = runtime.call_api("DELETE", "/api/v1/admin/tenants/acme", None, admin(runtime))
    assert answer.status == 200, answer.body
    body = answer.body
    assert body["status"] == "offboarded" and body["api_keys_revoked"] and not body["data_deleted"]
    assert body["schedules_stopped"] == ["daily_sales"]
    assert body["would_delete"] == {"datasets": datasets, "secrets": ["slack_webhook"]}
    assert _datasets(runtime, "acme") == datasets and list_secret_names(ctx, "acme") == ["slack_webhook"]

    # nothing the tenant had still works: its key, a run through the admin path, its schedule (ticked on time)
    on_time = CronSchedule("0 3 * * *", "Europe/Brussels").latest_at_or_before(datetime.now(UTC))
    refused = runtime.call_api("GET", "/api/v1/tenants/acme/pipelines", headers=key_headers)
    assert refused.status in (401, 403), refused.body
    assert execute(runtime, "acme", "daily_sales").status in (401, 403)
    with pytest.raises(TerminalError, match="offboarded"):
        trigger_scheduled_run(ctx, ScheduleTick(tenant_id="acme", pipeline_id="daily_sales"), on_time)
    reactivate = runtime.call_api("PATCH", "/api/v1/admin/tenants/acme", {"status": "active"}, admin(runtime))
    assert reactivate.status == 409 and reactivate.body["details"]["field"] == "tenant_id"

    wrong = runtime.call_api("POST", "/api/v1/admin/tenants/acme/offboard", {"confirm": "acm"}, admin(runtime))
    assert wrong.status == 400 and wrong.body["details"]["field"] == "confirm"
    bad = runtime.call_api("POST", "/api/v1/admin/tenants/acme/offboard", {"confirm": 5}, admin(runtime))
    assert bad.status == 400 and bad.body["details"]["field"] == "confirm"

    confirmed = runtime.call_api("POST", "/api/v1/admin/tenants/acme/offboard", {"confirm": "acme"}, admin(runtime))
    assert confirmed.status == 200 and confirmed.body["data_deleted"], confirmed.body
    assert confirmed.body["deleted"] == {"datasets": datasets, "secrets": ["slack_webhook"]}
    assert confirmed.body["api_keys_revoked"] == []  # already revoked
    assert _datasets(runtime, "acme") == [] and list_secret_names(ctx, "acme") == []

    again = runtime.call_api("DELETE", "/api/v1/admin/tenants/acme", {"confirm": "acme"}, admin(runtime))
    assert again.status == 200 and again.body["deleted"] == {"datasets": [], "secrets": []}
    actions = [a["action"] for a in list_audit(ctx, "acme")]
    assert actions.count("tenant.offboarded") == 1 and actions.count("tenant.data_deleted") == 1
    audit = next(a for a in list_audit(ctx, "acme") if a["action"] == "tenant.data_deleted")
    assert audit["user_id"] == "ops@example.com" and audit["details"]["datasets"] == datasets
    assert "testco_metadata" in _datasets(runtime, "testco")  # another tenant's data is untouched


def test_offboarding_needs_the_admin_credential_and_a_known_tenant(runtime: Any) -> None:
    assert runtime.call_api("DELETE", "/api/v1/admin/tenants/acme", None, auth(runtime, "acme")).status == 401
    missing = runtime.call_api("DELETE", "/api/v1/admin/tenants/nobody_here", None, admin(runtime))
    assert missing.status == 404 and missing.body["details"]["field"] == "tenant_id"
    extra = runtime.call_api("DELETE", "/api/v1/admin/tenants/acme", {"confirm": "acme", "x": 1}, admin(runtime))
    assert extra.status == 400 and extra.body["details"]["field"] == "x"


def test_cli_offboard_keeps_data_without_yes(runtime: Any, settings: Any) -> None:
    from shared.cli.main import cli

    env = {"CLOUDACT_HOME": str(settings.home), "CLOUDACT_CONFIG_DIR": str(settings.config_dir)}
    refused = CliRunner().invoke(cli, ["tenants", "offboard", "testco", "--delete-data"], env=env)
    assert refused.exit_code == 2 and "--yes" in refused.output
    assert runtime.context.state.get("tenants/testco")["status"] == "active"
    runtime.close()  # the CLI opens the same files
    out = CliRunner().invoke(cli, ["tenants", "offboard", "testco"], env=env)
    assert out.exit_code == 0, out.output
    assert '"status": "offboarded"' in out.output and '"would_delete"' in out.output
    out = CliRunner().invoke(cli, ["tenants", "offboard", "testco", "--delete-data", "--yes"], env=env)
    assert out.exit_code == 0 and '"data_deleted": true' in out.output and "testco_metadata" in out.output
