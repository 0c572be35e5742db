"""Fixtures shared by every test layer: an isolated embedded runtime over a temp `.cloudact/` and config folder."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.runtime.settings import Settings
from tests.manual_clock import ManualClock, installed
from tests.servers import SERVER_MARKERS, fast_run

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Under `make test-fast` (no servers started) a test marked as needing one fails at once, naming the marker."""
    needs = [m for m in SERVER_MARKERS if item.get_closest_marker(m)]
    if needs and fast_run():
        pytest.fail(f"marked {needs}: needs a server, which make test-fast does not start (make test does)")


@pytest.fixture
def manual_clock() -> Iterator[ManualClock]:
    """The process clock stands still until the test calls `advance()` (tests/manual_clock.py)."""
    with installed(ManualClock()) as clock:
        yield clock


@pytest.fixture
def ticking_clock() -> Iterator[ManualClock]:
    """The process clock follows real time and jumps forward on `advance()`: for a runtime whose threads wait on it."""
    with installed(ManualClock(ticking=True)) as clock:
        yield clock


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """The repo's tenant_configs plus the test tenant `testco` (tests/data/tenant_configs)."""
    out = tmp_path / "tenant_configs"
    shutil.copytree(REPO / "tenant_configs", out)
    shutil.copytree(DATA / "tenant_configs", out, dirs_exist_ok=True)
    return out


@pytest.fixture
def settings(tmp_path: Path, config_dir: Path) -> Settings:
    return Settings(runtime="embedded", home=tmp_path / ".cloudact", config_dir=config_dir)


@pytest.fixture
def make_runtime(settings: Settings) -> Iterator[Callable[..., Any]]:
    from shared.app import embedded

    started: list[Any] = []

    def make(**kwargs: Any) -> Any:
        runtime = embedded.start(settings, max_backoff_s=0.05, **kwargs)
        started.append(runtime)
        return runtime

    yield make
    for runtime in started:
        runtime.close()


@pytest.fixture
def runtime(make_runtime: Callable[..., Any]) -> Any:
    return make_runtime()


def auth(runtime: Any, tenant: str) -> dict[str, str]:
    """Headers with the embedded runtime's API key for `tenant` (none for a tenant without a config folder)."""
    key = runtime.api_keys.get(tenant)
    return {"X-API-Key": key} if key else {}


def execute(runtime: Any, tenant: str, pipeline: str, **body: Any) -> Any:
    return runtime.call_api(
        "POST", f"/api/v1/tenants/{tenant}/pipelines/execute", {"pipeline_id": pipeline, **body}, auth(runtime, tenant)
    )


def run_to_end(runtime: Any, tenant: str, pipeline: str, timeout: float = 30.0, **body: Any) -> dict[str, Any]:
    """Execute through the api function and wait until the bus is idle; returns the run with its stages."""
    response = execute(runtime, tenant, pipeline, **body)
    assert response.status in (200, 202), response.body
    assert runtime.wait_idle(timeout), "bus did not drain"
    run = runtime.call_api(
        "GET", f"/api/v1/tenants/{tenant}/metadata/executions/{response.body['run_id']}", headers=auth(runtime, tenant)
    )
    assert run.status == 200, run.body
    return dict(run.body)


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")
