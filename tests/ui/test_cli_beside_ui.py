"""`cloudact run` in a second terminal while `cloudact ui` serves: the run goes to the server (which holds the DuckDB
warehouse) instead of failing on the file lock, and ends with its history and its notification."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time
from pathlib import Path

from shared.cli.local_api import announce_server, find_local_server, server_file, withdraw_server
from shared.runtime.settings import Settings
from tests.ui.conftest import CLOUDACT, ServedHistory, _env


def _cloudact(served: ServedHistory, *args: str) -> subprocess.CompletedProcess[str]:
    env = _env(served.home, served.home.parent / "tenant_configs")
    return subprocess.run(
        [CLOUDACT, *args], env=env, cwd=served.home.parent, capture_output=True, text=True, timeout=120
    )


def test_the_server_announces_itself_owner_only(served: ServedHistory) -> None:
    path = served.home / "server.json"
    announced = json.loads(path.read_text())
    assert announced["url"] == served.url and isinstance(announced["pid"], int)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_cloudact_run_beside_the_ui_is_run_by_the_server(served: ServedHistory) -> None:
    result = _cloudact(served, "run", "acme", "daily_sales", "--param", "order_count=300")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"accepted (202) by {served.url}" in result.stdout
    assert "Could not set lock" not in result.stdout + result.stderr
    run_id = re.search(r"^run (run_[0-9a-f]+) acme/daily_sales accepted", result.stdout, re.M)
    assert run_id, result.stdout
    assert "SUCCEEDED" in result.stdout and "rows written: 330" in result.stdout
    assert "notifications: sales_team QUEUED in the local outbox" in result.stdout
    run = served.api("GET", f"/api/v1/tenants/acme/metadata/executions/{run_id.group(1)}", served.keys["acme"]).json()
    assert run["status"] == "SUCCEEDED"
    # its history row is in the warehouse the server holds (the listing reads pipeline_executions)
    listed = served.api(
        "GET", "/api/v1/tenants/acme/metadata/executions", served.keys["acme"], params={"pipeline_id": "daily_sales"}
    ).json()
    assert run_id.group(1) in {r["run_id"] for r in listed["executions"]}


def test_an_unknown_tenant_is_named_with_the_known_ones(served: ServedHistory) -> None:
    result = _cloudact(served, "run", "nobody", "x")
    assert result.returncode == 1
    assert "unknown tenant nobody (known: acme, globex, testco)" in result.stdout, result.stdout
    assert "API key" not in result.stdout


def test_a_stale_or_foreign_server_file_is_ignored(tmp_path: Path) -> None:
    settings = Settings(runtime="embedded", home=tmp_path / ".cloudact")
    assert find_local_server(settings) is None  # no file
    announce_server(settings, "http://127.0.0.1:9")
    assert find_local_server(settings) is None  # our own pid: not a separate server
    dead = subprocess.Popen(["true"])
    dead.wait()
    server_file(settings).write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": dead.pid}))
    assert find_local_server(settings) is None  # its process is gone
    server_file(settings).write_text(json.dumps({"url": "http://example.com:80", "pid": os.getppid()}))
    assert find_local_server(settings) is None  # not a loopback server
    withdraw_server(settings)
    assert server_file(settings).exists()  # another process's file is left alone
    announce_server(settings, "http://127.0.0.1:9")
    withdraw_server(settings)
    assert not server_file(settings).exists()


def test_a_server_that_no_longer_answers_is_not_used(tmp_path: Path) -> None:
    settings = Settings(runtime="embedded", home=tmp_path / ".cloudact")
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        server_file(settings).parent.mkdir(parents=True)
        server_file(settings).write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": sleeper.pid}))
        started = time.monotonic()
        assert find_local_server(settings) is None  # alive pid, nothing listening on the port
        assert time.monotonic() - started < 5
    finally:
        sleeper.kill()
        sleeper.wait()
