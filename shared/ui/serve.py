"""Serve shared/ui/static/ under /ui/ from the `api` function, with a strict Content-Security-Policy.

Why in the api function and not a bucket: the page then has the API's own origin, so `connect-src 'self'` is enough,
no CORS is opened, and one deployment serves both. Only the files shipped in static/ can be named (a fixed table
built from the folder, never a path joined from the request), every response carries the security headers, and the
HTML holds nothing about any tenant, so it can be cached by anyone; ETags keep revalidation cheap.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
UI_PREFIX = "/ui"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}\.(html|js|css|svg)$")

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",  # the sign-in form is handled by script: without it, nothing is ever submitted
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",  # no HTML strings reach the DOM: text nodes only
        "trusted-types 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}


@dataclass(frozen=True)
class StaticFile:
    text: str
    content_type: str
    etag: str


_FILES: dict[str, StaticFile] = {}


def static_files() -> dict[str, StaticFile]:
    """name -> file, read once per process (the files are part of the deployed bundle and never change under it)."""
    if not _FILES:
        for path in sorted(STATIC_DIR.iterdir()):
            if path.is_file() and _NAME.match(path.name):
                text = path.read_text(encoding="utf-8")
                etag = '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'
                _FILES[path.name] = StaticFile(text, _TYPES[path.suffix], etag)
    return _FILES


def is_ui_path(path: str) -> bool:
    return path == UI_PREFIX or path.startswith(UI_PREFIX + "/")


Response = tuple[str, int, dict[str, str]]


def _error(status: int, code: str, message: str, extra: dict[str, str] | None = None) -> Response:
    body = json.dumps({"error": code, "message": message, "details": {}})
    headers = {"Content-Type": "application/json", "Cache-Control": "no-store", **SECURITY_HEADERS}
    return body, status, {**headers, **(extra or {})}


def ui_response(method: str, path: str, if_none_match: str | None = None) -> Response:
    """(body, status, headers) for a request under /ui: a shipped file, a redirect to /ui/, or a JSON error."""
    if method not in ("GET", "HEAD"):
        return _error(405, "METHOD_NOT_ALLOWED", f"{method} is not allowed here; use GET", {"Allow": "GET, HEAD"})
    if path == UI_PREFIX:  # relative, so it also works behind a path prefix (e.g. .../api/ui on cloudfunctions.net)
        return "", 301, {"Location": "ui/", "Cache-Control": "no-cache", **SECURITY_HEADERS}
    name = path[len(UI_PREFIX) + 1 :] or "index.html"
    file = static_files().get(name)
    if file is None:
        return _error(404, "NOT_FOUND", f"no such file under /ui/: {name[:100]!r}")
    headers = {"Content-Type": file.content_type, "Cache-Control": "no-cache", "ETag": file.etag, **SECURITY_HEADERS}
    if if_none_match is not None and file.etag in {tag.strip() for tag in if_none_match.split(",")}:
        return "", 304, headers
    return file.text, 200, headers  # for HEAD the server drops the body and keeps its length
