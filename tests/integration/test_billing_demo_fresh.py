"""The billing demo is clean on a fresh clone: `cloudact sample-data billing` writes an export that ends yesterday,
so `cloudact run globex billing_costs` today passes every check, the freshness warning included."""

from __future__ import annotations

import datetime as dt
from typing import Any

from click.testing import CliRunner

from shared.cli.main import cli
from shared.runtime.context import Context
from shared.runtime.settings import Settings


def test_sample_data_then_billing_costs_passes_every_check(settings: Settings, monkeypatch: Any) -> None:
    monkeypatch.setenv("CLOUDACT_HOME", str(settings.home))
    monkeypatch.setenv("CLOUDACT_CONFIG_DIR", str(settings.config_dir))
    monkeypatch.setenv("CLOUDACT_RUNTIME", "embedded")
    today = dt.datetime.now(dt.UTC).date()
    sample = CliRunner().invoke(cli, ["sample-data", "billing", "--rows", "2000"])
    assert sample.exit_code == 0, sample.output
    assert f"30 days from {today - dt.timedelta(days=30)}" in sample.output
    ran = CliRunner().invoke(cli, ["run", "globex", "billing_costs", "--quiet"])
    assert ran.exit_code == 0, ran.output
    text = " ".join(ran.output.split())
    assert "SUCCEEDED" in text and "freshness" in text
    assert " warn fail " not in text and " warn error " not in text, ran.output  # no warning left on a fresh demo
    ctx = Context(settings)
    try:
        rows = (
            ctx.warehouse_for("globex")
            .query("SELECT check_type, status, severity FROM globex_metadata.dq_results")
            .to_pylist()
        )
    finally:
        ctx.close()
    assert rows and all(r["status"] == "pass" for r in rows), rows
    assert {"freshness"} <= {r["check_type"] for r in rows}
