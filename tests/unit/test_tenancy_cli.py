"""`cloudact tenants | keys | secrets` on the embedded stores: what an operator types and sees."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from shared.cli.main import cli


@pytest.fixture
def run(tmp_path: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("CLOUDACT_HOME", str(tmp_path / ".cloudact"))
    monkeypatch.setenv("CLOUDACT_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("CLOUDACT_RUNTIME", "embedded")
    return CliRunner()


def test_onboard_keys_and_secrets_from_the_cli(run: CliRunner, tmp_path: Path) -> None:
    first = run.invoke(cli, ["tenants", "onboard", "initech", "--plan", "starter", "--limit", "runs_per_day=5"])
    assert first.exit_code == 0, first.output
    key = re.search(r"cdp_[0-9a-f]{16}_\S+", first.output)
    assert key is not None and "shown once" in first.output
    again = run.invoke(cli, ["tenants", "onboard", "initech", "--plan", "starter"])
    assert again.exit_code == 0 and "already onboarded" in again.output and "cdp_" not in again.output
    shown = run.invoke(cli, ["tenants", "show", "initech"])
    assert '"runs_per_day": 5' in shown.output
    created = run.invoke(cli, ["keys", "create", "initech", "--name", "ci", "--scope", "runs:read"])
    key_id = re.search(r"key ([0-9a-f]{16})", created.output).group(1)  # type: ignore[union-attr]
    listed = run.invoke(cli, ["keys", "list", "initech"]).output
    assert key_id in listed and "runs:read" in listed and "cdp_" not in listed
    assert "revoked" in run.invoke(cli, ["keys", "revoke", "initech", key_id]).output
    assert (
        run.invoke(cli, ["secrets", "set", "initech", "smtp_password", "--stdin"], input="hunter2-pw\n").exit_code == 0
    )
    assert run.invoke(cli, ["secrets", "list", "initech"]).output.split() == ["smtp_password"]
    state = (tmp_path / ".cloudact" / "state.sqlite3").read_bytes()
    assert b"hunter2-pw" not in state and key.group(0).encode() not in state
    suspended = run.invoke(cli, ["tenants", "update", "initech", "--status", "suspended"])
    assert '"status": "suspended"' in suspended.output
    bad = run.invoke(cli, ["tenants", "onboard", "Bad-Id"])
    assert bad.exit_code == 1 and "invalid tenant id" in bad.output
    token = run.invoke(cli, ["tenants", "admin-token"]).output.strip()
    assert token.startswith("cdpadm_") and len(token) >= 32


def test_the_cli_makes_the_same_audited_changes_as_the_api(run: CliRunner) -> None:
    """shared/tenancy/administration.py serves both: the same audit actions and details, limits merged."""
    from shared.runtime.context import Context
    from shared.runtime.settings import Settings
    from shared.tenancy.audit import list_audit

    assert run.invoke(cli, ["tenants", "onboard", "initech", "--limit", "runs_per_day=5"]).exit_code == 0
    updated = run.invoke(cli, ["tenants", "update", "initech", "--limit", "concurrent_runs=2"])
    assert '"runs_per_day": 5' in updated.output and '"concurrent_runs": 2' in updated.output
    created = run.invoke(cli, ["keys", "create", "initech", "--name", "ci"])
    key_id = re.search(r"key ([0-9a-f]{16})", created.output).group(1)  # type: ignore[union-attr]
    rotated = run.invoke(cli, ["keys", "rotate", "initech", key_id, "--grace-seconds", "0"])
    new_id = re.search(r"new key ([0-9a-f]{16})", rotated.output).group(1)  # type: ignore[union-attr]
    assert run.invoke(cli, ["secrets", "set", "initech", "token", "--stdin"], input="s3cret\n").exit_code == 0
    assert run.invoke(cli, ["secrets", "delete", "initech", "token"]).exit_code == 0
    missing = run.invoke(cli, ["secrets", "delete", "initech", "token"])
    assert missing.exit_code == 1 and "has no secret 'token'" in missing.output
    bad_name = run.invoke(cli, ["secrets", "set", "initech", "Bad Name", "--stdin"], input="x\n")
    assert bad_name.exit_code == 1 and "secret names are lower-case" in bad_name.output
    ctx = Context(Settings.from_env())
    try:
        entries = [a for a in list_audit(ctx, "initech") if a["action"].startswith(("api_key.", "secret."))]
        audit = {(a["action"], tuple(sorted(a["details"].items()))) for a in entries}
    finally:
        ctx.close()
    assert ("api_key.created", (("key_id", key_id),)) in audit
    assert ("api_key.rotated", (("key_id", key_id), ("new", new_id))) in audit
    assert {("secret.set", (("name", "token"),)), ("secret.deleted", (("name", "token"),))} <= audit
