"""The smoke test of cloudbuild.yaml, run as written against the real `api` entry point on the embedded runtime.

The script is taken out of the `smoke` step verbatim and run in its own process against `cloudact ui`'s server
(functions-framework's app for functions/api.py on 127.0.0.1): it must pass when the pipeline succeeds and fail,
naming why, when the key is wrong or the run does not succeed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from shared.runtime.settings import Settings
from tests.conftest import REPO


def smoke_script() -> str:
    build = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())
    step = next(s for s in build["steps"] if s["id"] == "smoke")
    shell = step["args"][-1]
    start = shell.index("<<'PY'\n") + len("<<'PY'\n")
    return shell[start : shell.index("\nPY", start)]


@pytest.fixture
def api(settings: Settings) -> Iterator[Any]:
    from shared.cli.ui import UiServer

    server = UiServer(settings, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.close()
        thread.join(timeout=10)


def run_smoke(
    url: str, key: str, pipeline: str, parameters: dict[str, Any], tenant: str = "acme"
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "API_URL": url,
        "SMOKE_MODE": "execute",
        "SMOKE_TENANT": tenant,
        "SMOKE_PIPELINE": pipeline,
        "SMOKE_PARAMETERS": json.dumps(parameters),
        "SMOKE_TIMEOUT_SECONDS": "120",
        "SMOKE_IDEMPOTENCY_KEY": f"smoke-test-{pipeline}",
        "SMOKE_KEY": key,
        "SMOKE_POLL_SECONDS": "0.2",
        "ID_TOKEN": "",
    }
    return subprocess.run(
        [sys.executable, "-c", smoke_script()], env=env, capture_output=True, text=True, timeout=180, check=False
    )


def test_smoke_passes_when_the_pipeline_succeeds(api: Any) -> None:
    done = run_smoke(api.url, api.runtime.api_keys["acme"], "daily_sales", {"order_count": 10})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "health: 200" in done.stdout
    assert "execute: 202" in done.stdout
    assert "SUCCEEDED" in done.stdout.splitlines()[-1]


def test_smoke_fails_on_a_wrong_key(api: Any) -> None:
    done = run_smoke(api.url, "cdp_nope_wrong", "daily_sales", {"order_count": 10})
    assert done.returncode != 0
    assert "smoke: execute answered 401" in done.stderr


def test_smoke_fails_when_the_request_is_refused(api: Any) -> None:
    # order_count must be an int: the run is refused at admission (400), which is not a success either.
    done = run_smoke(api.url, api.runtime.api_keys["acme"], "daily_sales", {"order_count": "many"})
    assert done.returncode != 0
    assert "smoke: execute answered 400" in done.stderr


def test_smoke_fails_when_the_run_ends_failed(api: Any) -> None:
    done = run_smoke(api.url, api.runtime.api_keys["testco"], "always_failing", {}, tenant="testco")
    assert done.returncode != 0, done.stdout
    assert "ended FAILED" in done.stderr
