"""A run whose warehouse is unusable (another process holds the tenant's DuckDB file, as an old `cloudact ui` or a
`cloudact query` would) ends terminal with its alert, instead of being left unfinished without history or alert."""

from __future__ import annotations

import subprocess
import sys
import time

from shared.cli.embedded_run import run_and_follow
from shared.contracts.state_paths import run_path
from shared.runs.store import list_runs
from shared.runtime.context import build_state, tenant_warehouse_path
from shared.runtime.settings import Settings

HOLD = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(120)"


def test_a_locked_warehouse_fails_the_run_with_its_alert(settings: Settings, capsys: object) -> None:
    from shared.app import embedded

    embedded.start(settings).close()  # onboard the local tenants (creates acme's warehouse file), then let go
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tenant_warehouse_path(settings, "acme"))], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        status = run_and_follow(settings, "acme", "daily_sales", {}, None, 120.0, True)
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert status == "FAILED" and elapsed < 60
    state = build_state(settings)
    try:
        (run,) = list_runs(state, "acme", None, "daily_sales", 5)
        doc = state.get(run_path(run["run_id"])) or {}
        assert doc["status"] == "FAILED" and "lock" in str(doc.get("error")).lower()
        assert doc.get("alerted"), doc  # the run.failed event went out although history could not be written
    finally:
        state.close()
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "notifications: data_alerts QUEUED in the local outbox" in out and "oncall QUEUED" in out, out
