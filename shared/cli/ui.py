"""`cloudact ui`: the run-history page on http://127.0.0.1:PORT/ui/, served by the real `api` entry point.

The process hosts the embedded runtime (SQLite state and DuckDB under `.cloudact/`, every function over the
in-process bus) and puts functions-framework's own WSGI app for `functions/api.py` behind werkzeug on the loopback
address only, so the page and the API behave as they do when deployed. Runs started through this server's API run
in this process; while it serves, `.cloudact/server.json` names it, so `cloudact run` (and runs cancel / rerun,
backfill) in another terminal send their requests here instead of opening the DuckDB warehouse this process holds.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

import click

from shared.runtime.settings import Settings


def api_wsgi_app() -> Any:
    """functions-framework's app for the `api` function: the same request handling as the deployed function."""
    import functions_framework

    import functions.api

    source = str(Path(functions.api.__file__))
    return functions_framework.create_app(target="api", source=source, signature_type="http")  # type: ignore[no-untyped-call]


MAINTENANCE_EVERY_S = 60.0
"""The local server runs the watchdog like Cloud Scheduler does on GCP (every 5 min there; sooner here)."""


class UiServer:
    """The embedded runtime plus a threaded werkzeug server on 127.0.0.1 (port 0 picks a free one)."""

    def __init__(self, settings: Settings, port: int) -> None:
        from werkzeug.serving import make_server

        from shared.app import embedded

        self.runtime = embedded.start(settings)
        self.runtime.start_maintenance_ticker(MAINTENANCE_EVERY_S)
        try:
            self.server = make_server("127.0.0.1", port, api_wsgi_app(), threaded=True)
        except BaseException:
            self.runtime.close()
            raise
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.settings = settings
        from shared.cli.local_api import announce_server

        announce_server(settings, self.url)  # the socket listens already: a request now waits for serve_forever

    def serve_forever(self) -> None:
        self.server.serve_forever(poll_interval=0.2)

    def close(self) -> None:
        from shared.cli.local_api import withdraw_server

        withdraw_server(self.settings)
        self.server.shutdown()
        self.server.server_close()
        self.runtime.close()


def signin_link(server: UiServer, tenant_id: str) -> str:
    """A one-time link that opens the page signed in as `tenant_id`, read-only (shared/api/signin.py)."""
    from shared.api.signin import create_signin_token

    return f"{server.url}/ui/?tenant={tenant_id}#signin={create_signin_token(server.runtime.context, tenant_id)}"


def banner(server: UiServer, settings: Settings, tenant_id: str | None = None) -> list[str]:
    tenants = sorted(server.runtime.api_keys)
    first = tenant_id or (tenants[0] if tenants else "TENANT")
    credentials = settings.home / "credentials.json"
    if first in tenants:
        opening = [
            f"  open      {signin_link(server, first)}",
            f"            signs this browser in as {first} (read-only); the link works once, within 10 minutes",
        ]
    else:
        opening = [f"  open      {server.url}/ui/?tenant={first}"]
    return [
        f"cloudact ui: the api function on {server.url} (embedded runtime, state in {settings.home})",
        *opening,
        f"  tenants   {', '.join(tenants) or 'none (add a folder to tenant_configs/)'}",
        f"  API key   {credentials} holds a local admin key per tenant under api_keys.<tenant> (mode 0600);",
        f"            read-only: cloudact keys create {first} --name ui --scope runs:read --scope pipelines:read",
        f"  runs      `cloudact run {first} PIPELINE` in another terminal sends the run here (this process holds the",
        f"            DuckDB warehouse), as does POST {server.url}/api/v1/tenants/{first}/pipelines/execute",
        "  Ctrl-C stops it.",
    ]


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the server like Ctrl-C: the runtime is closed cleanly


@click.command("ui")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="0: any free port.")
@click.option("--tenant", "tenant_id", default=None, help="Tenant the printed sign-in link opens (default: the first).")
def ui_cmd(port: int, tenant_id: str | None) -> None:
    """Serve the run-history page and the API on 127.0.0.1 (embedded runtime) and print its URL."""
    from shared import logs

    logs.configure(level="WARNING")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request (werkzeug forces INFO otherwise)
    settings = Settings.from_env()
    try:
        server = UiServer(settings, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from exc
    for line in banner(server, settings, tenant_id):
        click.echo(line)
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        click.echo("stopped")
