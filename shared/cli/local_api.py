"""The local API the CLI talks to: a running `cloudact ui` server if there is one, else an embedded runtime of its own.

Why: DuckDB lets one process at a time open a warehouse file for writing. `cloudact ui` keeps the embedded runtime
(and so the tenants' warehouse files) open for as long as it serves, so a second process starting its own runtime
fails on the file lock. Instead, `cloudact ui` announces itself in `.cloudact/server.json` (its URL and pid, mode
0600, removed when it stops), and `cloudact run` / `runs cancel` / `runs rerun` / `backfill` send their request to
that server's API and follow the run by reading the state store, which SQLite lets any number of processes read.
Without a live server the CLI starts the embedded runtime in its own process, as before.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from shared.api.base import ApiResponse
from shared.ports.state import StateStore
from shared.runtime.settings import Settings

SERVER_FILE = "server.json"
HEALTH_TIMEOUT_S = 2.0
REQUEST_TIMEOUT_S = 60.0


def server_file(settings: Settings) -> Path:
    return settings.home / SERVER_FILE


def announce_server(settings: Settings, url: str) -> Path:
    """Record that this process serves the local API at `url` (atomic write, owner-only)."""
    path = server_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"url": url, "pid": os.getpid(), "started_at": time.time()}, out)
    os.replace(tmp, path)
    return path


def withdraw_server(settings: Settings) -> None:
    """Remove the server file if it is still this process's (a newer server may have replaced it)."""
    path = server_file(settings)
    if _read_server_file(path).get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def _read_server_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def find_local_server(settings: Settings) -> str | None:
    """The URL of a live `cloudact ui` serving this `.cloudact/` folder, or None (no file, dead pid, no answer)."""
    if settings.runtime != "embedded":
        return None
    data = _read_server_file(server_file(settings))
    url, pid = data.get("url"), data.get("pid")
    if not isinstance(url, str) or not isinstance(pid, int) or pid == os.getpid() or not _pid_alive(pid):
        return None
    if not url.startswith("http://127.0.0.1:"):
        return None  # the file is ours to write; anything else is not a server this CLI started
    try:
        status, _ = http_call(url, "GET", "/api/v1/health", None, {}, HEALTH_TIMEOUT_S)
    except OSError:
        return None
    return url if status == 200 else None


def http_call(
    base_url: str, method: str, path: str, body: Any, headers: dict[str, str], timeout: float = REQUEST_TIMEOUT_S
) -> tuple[int, Any]:
    """One JSON request to the local server; 4xx/5xx come back as (status, body), connection trouble raises."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base_url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    for name, value in headers.items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw or b"null")
        except ValueError:
            return exc.code, {"error": "HTTP_ERROR", "message": raw.decode(errors="replace")[:500]}


class LocalApi(Protocol):
    """What the CLI needs of the local deployment: call the API as a tenant's key holder, read the state."""

    api_keys: dict[str, str]
    """tenant_id -> the local admin-scoped key of each tenant_configs/ tenant."""
    state: StateStore
    server_url: str | None
    """The `cloudact ui` server the requests go to, or None when this process hosts the runtime."""

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> ApiResponse: ...

    def settle(self, timeout: float) -> bool:
        """Wait up to `timeout` for in-flight work of this process; True when none is left (always False remote)."""
        ...


@dataclass
class RemoteApi:
    """Requests go to a running `cloudact ui`; its runtime does the work, this process only reads the state."""

    server_url: str
    api_keys: dict[str, str]
    state: StateStore

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> ApiResponse:
        status, payload = http_call(self.server_url, method, path, body, headers or {})
        return ApiResponse(status, payload)

    def settle(self, timeout: float) -> bool:
        time.sleep(timeout)
        return False


@dataclass
class EmbeddedApi:
    """This process hosts the embedded runtime (no server is running)."""

    runtime: Any
    server_url: None = None

    @property
    def api_keys(self) -> dict[str, str]:
        return dict(self.runtime.api_keys)

    @property
    def state(self) -> StateStore:
        return self.runtime.context.state  # type: ignore[no-any-return]

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> ApiResponse:
        return self.runtime.call_api(method, path, body, headers=headers)  # type: ignore[no-any-return]

    def settle(self, timeout: float) -> bool:
        return bool(self.runtime.wait_idle(timeout))


@contextmanager
def local_api(settings: Settings) -> Iterator[RemoteApi | EmbeddedApi]:
    """The running local server's API if there is one, else an embedded runtime started (and closed) here."""
    url = find_local_server(settings)
    if url is not None:
        from shared.runtime.context import build_state
        from shared.tenancy.credentials import load_local_credentials

        keys = dict(load_local_credentials(settings).get("api_keys") or {})
        state = build_state(settings)
        try:
            yield RemoteApi(url, keys, state)
        finally:
            state.close()
        return
    from shared.app import embedded

    runtime = embedded.start(settings)
    try:
        yield EmbeddedApi(runtime)
    finally:
        runtime.close()
