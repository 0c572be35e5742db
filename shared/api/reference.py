"""The API reference, rendered from the OpenAPI document the api serves (shared/api/openapi.py): docs/api.md, and the
HTML page the api serves at /api/v1/docs.

The page is plain HTML: no script and no inline style, so it lives under the same Content-Security-Policy as /ui/
(shared/ui/serve.py). Every value from the document is escaped; nothing about any tenant is in it, so it is cacheable.
"""

from __future__ import annotations

import hashlib
import html
import json
from typing import Any

from shared.ui.serve import SECURITY_HEADERS

DOCS_PATH = "/api/v1/docs"
_METHODS = ("get", "post", "put", "patch", "delete")


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method.upper(), op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in _METHODS
    ]


def _access(op: dict[str, Any]) -> str:
    if op.get("x-required-scope"):
        return f"API key, scope `{op['x-required-scope']}`"
    if op.get("security"):
        return "admin credential (X-Admin-Token)"
    return "none"


def _parameters(op: dict[str, Any]) -> list[str]:
    return [f"`{p['name']}` ({p['in']})" for p in op.get("parameters", []) if p["name"] != "X-User-ID"]


def _body_fields(document: dict[str, Any], op: dict[str, Any]) -> list[str]:
    body = op.get("requestBody")
    if not body:
        return []
    ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    schema = document["components"]["schemas"][ref]
    required = set(schema.get("required", []))
    return [f"`{name}`{'' if name in required else '?'}" for name in schema.get("properties", {})]


def render_markdown(document: dict[str, Any]) -> str:
    info = document["info"]
    lines = [
        "# API reference",
        "",
        f"{info['title']} {info['version']} (OpenAPI {document['openapi']}). {info['description']}",
        "The machine-readable document is served at `GET /api/v1/openapi.json`; this page as HTML at",
        f"`GET {DOCS_PATH}`. Tenant routes take `X-API-Key: cdp_<key_id>_<secret>`; admin routes `X-Admin-Token`;",
        "`X-User-ID` is recorded for audit only.",
        "",
        "| method | path | access | summary | parameters | body | responses |",
        "|---|---|---|---|---|---|---|",
    ]
    for path, method, op in _operations(document):
        cells = [
            method,
            f"`{path}`",
            _access(op),
            op["summary"],
            ", ".join(_parameters(op)) or "-",
            ", ".join(_body_fields(document, op)) or "-",
            " ".join(sorted(op["responses"])),
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", "## Status codes", "", "| status | meaning |", "|---|---|"]
    seen: dict[str, str] = {}
    for _, _, op in _operations(document):
        for code, response in op["responses"].items():
            seen.setdefault(code, response["description"])
    lines += [f"| {code} | {seen[code]} |" for code in sorted(seen)]
    return "\n".join(lines) + "\n"


def render_html(document: dict[str, Any]) -> str:
    e = html.escape
    info = document["info"]
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(info['title'])}: API reference</title></head><body>",
        f"<h1>{e(info['title'])} {e(info['version'])}</h1>",
        f'<p>{e(info["description"])} Machine-readable: <a href="openapi.json">openapi.json</a>.</p>',
    ]
    for path, method, op in _operations(document):
        out.append(f'<section id="{e(op["operationId"])}"><h2><code>{e(method)} {e(path)}</code></h2>')
        out.append(f"<p>{e(op['summary'])}. Access: {e(_access(op))}.</p>")
        params = _parameters(op)
        if params:
            out.append("<p>Parameters: " + e(", ".join(p.replace("`", "") for p in params)) + "</p>")
        fields = _body_fields(document, op)
        if fields:
            out.append("<p>JSON body: " + e(", ".join(f.replace("`", "") for f in fields)) + "</p>")
        out.append("<dl>")
        for code, response in sorted(op["responses"].items()):
            out.append(f"<dt>{e(code)}</dt><dd>{e(response['description'])}</dd>")
        out.append("</dl></section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


Response = tuple[str, int, dict[str, str]]
_PAGE: dict[str, tuple[str, str]] = {}


def docs_response(method: str, document: dict[str, Any], if_none_match: str | None = None) -> Response:
    """(body, status, headers) for GET /api/v1/docs: the page, rendered once per process, with the UI's headers."""
    if method not in ("GET", "HEAD"):
        body = json.dumps({"error": "METHOD_NOT_ALLOWED", "message": f"{method} is not allowed here; use GET"})
        return body, 405, {"Content-Type": "application/json", "Allow": "GET, HEAD", **SECURITY_HEADERS}
    if "page" not in _PAGE:
        text = render_html(document)
        _PAGE["page"] = (text, '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"')
    text, etag = _PAGE["page"]
    headers = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache", "ETag": etag}
    headers |= SECURITY_HEADERS
    if if_none_match is not None and etag in {tag.strip() for tag in if_none_match.split(",")}:
        return "", 304, headers
    return text, 200, headers
