"""/ui/ is served by the `api` function itself (functions-framework's real WSGI app for main.py): the shipped files
only, each with a strict Content-Security-Policy, no inline script or style, and nothing about any tenant in them."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import functions_framework
import pytest

from shared.ui.serve import STATIC_DIR

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.name for p in STATIC_DIR.iterdir() if p.is_file())
RAW_KEY = re.compile(r"cdp_[0-9a-f]{16}_[A-Za-z0-9_\-]{20,}")


@pytest.fixture
def client(runtime: Any) -> Any:
    app = functions_framework.create_app(target="api", source=str(REPO / "main.py"), signature_type="http")
    return app.test_client()


def csp_directives(response: Any) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    return {part.split(" ", 1)[0]: part.split(" ", 1)[1] for part in (p.strip() for p in policy.split(";")) if part}


def test_the_page_and_its_assets_are_served_with_their_types_and_a_strict_policy(client: Any) -> None:
    page = client.get("/ui/")
    assert page.status_code == 200 and page.content_type == "text/html; charset=utf-8"
    html = page.get_data(as_text=True)
    assert '<script type="module" src="app.js"></script>' in html and 'href="app.css"' in html
    expected_types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    assert {Path(n).suffix for n in SHIPPED} <= set(expected_types)
    for name in SHIPPED:
        response = client.get(f"/ui/{name}")
        assert response.status_code == 200, name
        assert response.content_type.startswith(expected_types[Path(name).suffix]), name
        assert response.get_data() == (STATIC_DIR / name).read_bytes()
        directives = csp_directives(response)
        assert directives["default-src"] == "'self'" and directives["script-src"] == "'self'"
        assert directives["style-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
        assert directives["require-trusted-types-for"] == "'script'" and directives["object-src"] == "'none'"
        assert "unsafe" not in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    assert client.get("/api/v1/health").get_json()["status"] == "ok"  # the API beside it is unchanged


def test_no_inline_script_or_style_and_no_html_strings_in_the_scripts() -> None:
    html = (STATIC_DIR / "index.html").read_text()
    for tag in re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S):
        assert tag.strip() == "", "inline script"
    assert "<style" not in html and not re.search(r"\sstyle=", html) and not re.search(r"\son[a-z]+=", html)
    for name in (n for n in SHIPPED if n.endswith(".js")):
        code = (STATIC_DIR / name).read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in code, (name, sink)
        assert "localStorage" not in code and "document.cookie" not in code, name
        assert not re.search(r"setAttribute\(\s*['\"]style", code), name


def test_no_tenant_data_or_key_is_baked_into_the_files(config_dir: Path) -> None:
    tenants = [p.name for p in config_dir.iterdir() if p.is_dir() and not p.name.startswith("_")]
    assert "acme" in tenants
    for name in SHIPPED:
        text = (STATIC_DIR / name).read_text()
        assert not RAW_KEY.search(text), name
        for tenant in tenants:
            assert not re.search(rf"\b{tenant}\b", text), (name, tenant)


def test_the_api_key_is_kept_in_session_storage_and_sent_only_as_a_header() -> None:
    app = (STATIC_DIR / "app.js").read_text()
    assert "sessionStorage.setItem(KEY, key)" in app
    assert '"X-API-Key": key' in app and 'credentials: "omit"' in app
    assert not re.search(r"searchParams\.set\([^)]*key", app, re.I)  # never a query parameter
    assert 'type="password"' in (STATIC_DIR / "index.html").read_text()


@pytest.mark.parametrize(
    "path",
    ["/ui/nope.js", "/ui/../main.py", "/ui/%2e%2e/main.py", "/ui/serve.py", "/ui/static/app.js", "/ui/.env",
     "/ui/app.js/", "/ui/APP.JS"],
)  # fmt: skip
def test_only_shipped_files_can_be_named(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404, path
    assert response.get_json()["error"] == "NOT_FOUND"
    assert "Content-Security-Policy" in response.headers


def test_redirect_methods_and_revalidation(client: Any) -> None:
    bare = client.get("/ui")
    assert bare.status_code == 301 and bare.headers["Location"].endswith("ui/")
    posted = client.post("/ui/", data=b"x")
    assert posted.status_code == 405 and posted.headers["Allow"] == "GET, HEAD"
    first = client.get("/ui/app.js")
    again = client.get("/ui/app.js", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.get_data() == b""
    head = client.head("/ui/")
    assert head.status_code == 200 and head.get_data() == b""
    assert int(head.headers["Content-Length"]) == len((STATIC_DIR / "index.html").read_bytes())


def test_every_shipped_file_is_packaged() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["shared.ui"]
    for name in SHIPPED:
        assert any(fnmatch(f"static/{name}", pattern) for pattern in patterns), name
