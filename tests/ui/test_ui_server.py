"""`cloudact ui`: a real process serving the `api` function on 127.0.0.1 (see conftest.served), as a user starts it."""

from __future__ import annotations

import socket
import stat
import subprocess
from pathlib import Path

from tests.ui.conftest import CLOUDACT, REPO, ServedHistory, _env


def test_the_banner_says_where_the_page_and_the_key_are_without_printing_a_key(served: ServedHistory) -> None:
    assert f"open      {served.url}/ui/?tenant=acme" in served.banner
    assert "tenants   acme, globex, testco" in served.banner
    assert f"{served.home / 'credentials.json'} holds a local admin key per tenant under api_keys.<tenant>" in (
        served.banner
    )
    assert stat.S_IMODE((served.home / "credentials.json").stat().st_mode) == 0o600
    assert not any(key in served.banner for key in served.keys.values()) and "cdp_" not in served.banner
    assert served.url.startswith("http://127.0.0.1:")


def test_the_page_and_the_api_are_served_over_http(served: ServedHistory) -> None:
    page = served.api("GET", "/ui/")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert served.api("GET", "/ui/app.js").headers["Content-Type"].startswith("text/javascript")
    listed = served.api("GET", "/api/v1/tenants/acme/metadata/executions", served.keys["acme"]).json()
    ids = {r["run_id"] for r in listed["executions"]}
    assert {served.demo_run, served.showcase_run} <= ids and served.other_tenant_run not in ids


def test_wrong_keys_and_other_tenants_are_refused(served: ServedHistory) -> None:
    wrong = served.api("GET", "/api/v1/tenants/acme/metadata/executions", "cdp_0123456789abcdef_" + "x" * 43)
    assert wrong.status_code == 401 and wrong.json()["error"] == "UNAUTHORIZED"
    crossed = served.api("GET", "/api/v1/tenants/testco/metadata/executions", served.keys["acme"])
    assert crossed.status_code == 403
    hidden = served.api(
        "GET", f"/api/v1/tenants/acme/metadata/executions/{served.other_tenant_run}", served.keys["acme"]
    )
    assert hidden.status_code == 404


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [CLOUDACT, "ui", "--port", str(port)],
            env=_env(tmp_path / ".cloudact", REPO / "tenant_configs"),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1 and f"Port {port} is in use" in result.stderr, result.stderr
