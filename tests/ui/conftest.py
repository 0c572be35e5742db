"""A served run history, as a user makes one: `cloudact demo` (which onboards the tenant_configs/ tenants and runs
acme's daily_sales), then `cloudact ui --port 0` (the real `api` entry point behind werkzeug on 127.0.0.1), then more
runs through that server's HTTP API: acme's `ui_showcase` (retries, data-quality checks, a failure that skips a step)
and testco's `fan_join` (another tenant's run, which acme must never see)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
CLOUDACT = str(Path(sys.executable).with_name("cloudact"))
SHOWCASE = """\
pipeline_id: ui_showcase
description: a step retried twice, data-quality checks (one failing warning), a failure that skips the last step
steps:
  - step_id: extract
    ps_type: debug.noop
    retries: {max_attempts: 3, backoff_seconds: 0.05}
    config: {fail_transient_attempts: 2, sleep_ms: 40, rows: 120}
  - step_id: check_orders
    ps_type: quality.check
    depends_on: [extract]
    source: {dataset: sales, table: orders}
    config:
      checks:
        - {type: row_count, min: 1}
        - {type: not_null, columns: [order_id, region]}
        - {type: accepted_values, column: region, values: [emea, amer, apac], severity: warn}
  - step_id: transform
    ps_type: debug.noop
    depends_on: [check_orders]
    config: {sleep_ms: 60, fail_terminal: true}
  - step_id: publish
    ps_type: debug.noop
    depends_on: [transform]
"""


LIVE = """\
pipeline_id: ui_live
description: long enough to be watched while it runs
steps:
  - {step_id: warm, ps_type: debug.noop}
  - {step_id: long, ps_type: debug.noop, depends_on: [warm], config: {sleep_ms: 4000}}
"""


@dataclass
class ServedHistory:
    url: str
    home: Path
    keys: dict[str, str]
    """tenant -> the local admin key `cloudact` keeps in credentials.json."""
    admin_token: str
    demo_run: str
    showcase_run: str
    other_tenant_run: str
    banner: str

    @property
    def signin_link(self) -> str:
        """The one-time sign-in link `cloudact ui` printed (it works once)."""
        found = re.search(r"open      (http://\S+#signin=\S+)", self.banner)
        assert found, self.banner
        return found.group(1)

    def api(self, method: str, path: str, key: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {**({"X-API-Key": key} if key else {}), **kwargs.pop("headers", {})}
        return requests.request(method, self.url + path, headers=headers, timeout=10, **kwargs)


def _env(home: Path, config_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDACT_", "PUBSUB_", "FIRESTORE_"))}
    env.update(
        CLOUDACT_RUNTIME="embedded",
        CLOUDACT_HOME=str(home),
        CLOUDACT_CONFIG_DIR=str(config_dir),
        CLOUDACT_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


def _wait_terminal(served: ServedHistory, tenant: str, run_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = served.api("GET", f"/api/v1/tenants/{tenant}/metadata/executions/{run_id}", served.keys[tenant]).json()
        if run["status"] not in ("QUEUED", "RUNNING") and run.get("ended_at"):
            notes = served.api("GET", f"/api/v1/tenants/{tenant}/notifications", served.keys[tenant])
            if not any(n["status"] in ("queued", "retrying") for n in notes.json()["notifications"]):
                return dict(run)
        time.sleep(0.1)
    raise AssertionError(f"{run_id} did not end in {timeout}s")


def _read_banner(process: subprocess.Popen[str], timeout: float = 30) -> str:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C stops it." in line:
            return "".join(lines)
    process.kill()
    raise AssertionError(f"cloudact ui did not start: {''.join(lines)}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedHistory]:
    root = tmp_path_factory.mktemp("served")
    config_dir, home = root / "tenant_configs", root / ".cloudact"
    shutil.copytree(REPO / "tenant_configs", config_dir)
    shutil.copytree(REPO / "tests" / "data" / "tenant_configs", config_dir, dirs_exist_ok=True)
    (config_dir / "acme" / "pipelines" / "ui_showcase.yaml").write_text(SHOWCASE)
    (config_dir / "acme" / "pipelines" / "ui_live.yaml").write_text(LIVE)
    env = _env(home, config_dir)
    demo = subprocess.run([CLOUDACT, "demo"], env=env, cwd=root, capture_output=True, text=True, timeout=120)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    demo_run = re.search(r"^run (run_[0-9a-f]+) acme/daily_sales accepted", demo.stdout, re.M)
    assert demo_run, demo.stdout
    process = subprocess.Popen(
        [CLOUDACT, "ui", "--port", "0"], env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        banner = _read_banner(process)
        url = re.search(r"on (http://127\.0\.0\.1:\d+) ", banner)
        assert url, banner
        creds = json.loads((home / "credentials.json").read_text())
        served = ServedHistory(url.group(1), home, creds["api_keys"], creds["admin_token"], demo_run.group(1), "", "",
                               banner)  # fmt: skip
        runs = {}
        for tenant, pipeline in (("acme", "ui_showcase"), ("testco", "fan_join")):
            response = served.api(
                "POST",
                f"/api/v1/tenants/{tenant}/pipelines/execute",
                served.keys[tenant],
                json={"pipeline_id": pipeline},
            )
            assert response.status_code == 202, response.text
            runs[tenant] = response.json()["run_id"]
        assert _wait_terminal(served, "acme", runs["acme"])["status"] == "FAILED"
        assert _wait_terminal(served, "testco", runs["testco"])["status"] == "SUCCEEDED"
        served.showcase_run, served.other_tenant_run = runs["acme"], runs["testco"]
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            out, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            out, _ = process.communicate()
        assert process.returncode == 0 and "stopped" in out, out
