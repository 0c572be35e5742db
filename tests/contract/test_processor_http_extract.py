"""http.extract against a real paginated JSON API served by http.server on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shared.errors import TerminalError, TransientError
from shared.pipelines.spec import StepSpec
from shared.pipelines.templating import ValidationScope
from shared.processors import http_extract
from shared.processors.http_client import retry_after_seconds
from shared.secrets.store import put_secret
from tests.processor_support import StepEnv, engine_fixture, env_fixture, warehouse_fixture  # noqa: F401

TOKEN = "s3cr3t-token-value"
INVOICES = [
    {"id": i, "customer": f"c{i % 7}", "amount": round(i * 1.25, 2), "paid": i % 3 == 0, "note": None}
    for i in range(1, 58)
]


@dataclass
class FakeApi:
    """A small invoice API: cursor, offset and page pagination, bearer auth, and scripted 429 / 503 answers."""

    base: str = ""
    requests: list[tuple[float, str, dict[str, list[str]], str | None]] = field(default_factory=list)
    failures: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    """path+query -> answers to give before the real one (status, headers)."""

    def answer(self, path: str, query: dict[str, list[str]], auth: str | None) -> tuple[int, dict[str, str], Any]:
        key = path + "?" + urllib.parse.urlencode(sorted((k, v[0]) for k, v in query.items()))
        scripted = self.failures.get(key) or self.failures.get(path)
        if scripted:
            status, headers = scripted.pop(0)
            return status, headers, {"error": "try later"}
        if auth != f"Bearer {TOKEN}":
            return 401, {}, {"error": "bad token", "got": auth}
        first = lambda name, default: int(query.get(name, [default])[0])  # noqa: E731
        if path == "/v1/invoices/cursor":
            start = first("cursor", "0")
            items = INVOICES[start : start + 10]
            following = start + 10 if start + 10 < len(INVOICES) else None
            return 200, {}, {"data": {"items": items}, "meta": {"next_cursor": following}}
        if path == "/v1/invoices/offset":
            offset, limit = first("offset", "0"), first("limit", "20")
            return 200, {}, {"results": INVOICES[offset : offset + limit]}
        if path == "/v1/invoices/page":
            page, size = first("page", "1"), first("per_page", "25")
            return 200, {}, INVOICES[(page - 1) * size : page * size]
        if path == "/v1/redirect":
            return 302, {"Location": "http://169.254.169.254/computeMetadata/v1/"}, {}
        return 404, {}, {"error": "no such path"}


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(parts.query)
            fake.requests.append((time.monotonic(), parts.path, query, self.headers.get("Authorization")))
            status, headers, body = fake.answer(parts.path, query, self.headers.get("Authorization"))
            payload = json.dumps(body).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def token(env: StepEnv) -> str:
    put_secret(env.context, env.tenant_id, "invoice_api", TOKEN.encode())
    return TOKEN


def _step(api: FakeApi, path: str, pagination: dict[str, Any], **source: Any) -> dict[str, Any]:
    return {
        "step_id": "extract",
        "ps_type": "http.extract",
        "source": {
            "url": api.base + path,
            "auth": {"secret": "invoice_api"},
            "pagination": pagination,
            "retries": {"max_attempts": 4, "backoff_seconds": 0.05},
            "rate_limit": {"requests_per_second": 200},
            **source,
        },
        "destination": {"dataset": "raw", "table": "invoices", "write_mode": "truncate"},
    }


def _ids(env: StepEnv) -> list[int]:
    return [r["id"] for r in env.table("raw", "invoices", order_by="id")]


def test_cursor_pagination_lands_every_record(env: StepEnv, api: FakeApi, token: str) -> None:
    step = _step(
        api, "/v1/invoices/cursor", {"type": "cursor", "cursor_path": "meta.next_cursor"}, records_path="data.items"
    )
    result = env.run(step)
    assert _ids(env) == [i["id"] for i in INVOICES]
    assert result.rows_out == 57 and result.details["pages"] == 6
    assert all(auth == f"Bearer {TOKEN}" for *_, auth in api.requests)
    row = env.table("raw", "invoices", order_by="id")[3]
    assert row == {"id": 4, "customer": "c4", "amount": 5.0, "paid": False, "note": None}


def test_offset_and_page_pagination_stop_on_a_short_page(env: StepEnv, api: FakeApi, token: str) -> None:
    env.run(_step(api, "/v1/invoices/offset", {"type": "offset", "limit": 20}, records_path="results"))
    assert _ids(env) == list(range(1, 58))
    assert [q["offset"] for _, path, q, _ in api.requests] == [["0"], ["20"], ["40"]]
    api.requests.clear()
    result = env.run(_step(api, "/v1/invoices/page", {"type": "page", "size": 25}))
    assert _ids(env) == list(range(1, 58)) and result.details["pages"] == 3


def test_429_and_503_are_retried_honouring_retry_after(env: StepEnv, api: FakeApi, token: str) -> None:
    api.failures["/v1/invoices/offset?limit=20&offset=20"] = [(429, {"Retry-After": "1"}), (503, {})]
    result = env.run(_step(api, "/v1/invoices/offset", {"type": "offset", "limit": 20}, records_path="results"))
    assert _ids(env) == list(range(1, 58))
    page_two = [t for t, _, q, _ in api.requests if q.get("offset") == ["20"]]
    assert len(page_two) == 3 and page_two[1] - page_two[0] >= 0.95  # waited for Retry-After: 1
    assert result.details["retries"] == 2 and result.details["requests"] == 5


def test_persistent_5xx_gives_up_as_transient_and_keeps_the_table(env: StepEnv, api: FakeApi, token: str) -> None:
    env.run(_step(api, "/v1/invoices/page", {"type": "page", "size": 25}))
    api.failures["/v1/invoices/page"] = [(500, {})] * 10
    with pytest.raises(TransientError, match="giving up after 4 attempt"):
        env.run(_step(api, "/v1/invoices/page", {"type": "page", "size": 25}))
    assert len(_ids(env)) == 57
    api.failures["/v1/invoices/page"] = [(429, {"Retry-After": "3600"})]
    with pytest.raises(TransientError, match="too long") as caught:
        env.run(_step(api, "/v1/invoices/page", {"type": "page", "size": 25}))
    assert caught.value.retry_after_seconds == 3600


def test_a_wrong_token_is_terminal_and_never_echoed(env: StepEnv, api: FakeApi) -> None:
    put_secret(env.context, env.tenant_id, "invoice_api", b"wrong-" + TOKEN.encode())
    with pytest.raises(TerminalError, match="HTTP 401") as caught:
        env.run(_step(api, "/v1/invoices/page", {"type": "page"}))
    assert TOKEN not in str(caught.value) and "***" in str(caught.value)


def test_a_missing_secret_names_it(env: StepEnv, api: FakeApi) -> None:
    with pytest.raises(TerminalError, match="has no secret 'invoice_api'"):
        env.run(_step(api, "/v1/invoices/page", {"type": "page"}))


def test_redirects_and_metadata_addresses_are_refused(env: StepEnv, api: FakeApi, token: str) -> None:
    """The embedded runtime allows local servers (loopback + RFC 1918), but never the metadata server, however
    it is spelled or reached."""
    with pytest.raises(TerminalError, match=r"redirect to http://169\.254\.169\.254/.*metadata server\): refused"):
        env.run(_step(api, "/v1/redirect", {"type": "none"}))
    for url in (
        "http://169.254.169.254/computeMetadata/v1/",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[fd00:ec2::254]/",
        "http://2852039166/",
        "http://metadata.google.internal/computeMetadata/v1/",
    ):
        with pytest.raises(TerminalError, match=r"(metadata server|of 169\.254\.169\.254).*refused"):
            env.run(_step(api, "/v1/x", {"type": "none"}, url=url))
    assert [path for _, path, *_ in api.requests] == ["/v1/redirect"]


@pytest.mark.parametrize(
    "changes",
    [
        {"egress_allow_private": ("10.0.0.0/8",)},
        {"runtime": "gcp"},
        {"runtime": "gcp", "egress_allow_private": ("127.0.0.0/8",)},
    ],
    ids=["narrowed-local-allow-list", "gcp", "gcp-ignores-the-allow-list"],
)
def test_local_servers_are_refused_outside_the_local_allow_list(
    env: StepEnv, api: FakeApi, token: str, changes: dict[str, Any]
) -> None:
    settings = env.context.settings
    env.context.settings = dataclasses.replace(settings, **changes)
    try:
        with pytest.raises(TerminalError, match=r"127\.0\.0\.1 \(loopback\): refused"):
            env.run(_step(api, "/v1/invoices/page", {"type": "page"}))
    finally:
        env.context.settings = settings
    assert api.requests == []


def test_records_path_mismatch_says_what_is_there(env: StepEnv, api: FakeApi, token: str) -> None:
    with pytest.raises(TerminalError, match=r"no 'items' \(at 'items'; found: data, meta\)"):
        env.run(
            _step(
                api, "/v1/invoices/cursor", {"type": "cursor", "cursor_path": "meta.next_cursor"}, records_path="items"
            )
        )


def test_an_explicit_schema_types_the_columns(env: StepEnv, api: FakeApi, token: str) -> None:
    step = _step(api, "/v1/invoices/page", {"type": "page", "size": 25})
    step["config"] = {"schema": {"id": "INT64", "amount": "NUMERIC", "note": "STRING"}}
    env.run(step)
    rows = env.table("raw", "invoices", order_by="id")
    assert set(rows[0]) == {"id", "amount", "note"} and float(rows[1]["amount"]) == 2.5


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_validation_names_the_key() -> None:
    raw = {
        "step_id": "extract",
        "ps_type": "http.extract",
        "source": {"url": "ftp://x", "auth": {"secret": "Bad Name"}, "pagination": {"type": "cursor"}},
        "destination": {"dataset": "raw", "table": "t"},
    }
    found = {i.path: i.message for i in http_extract.SPEC.validate(StepSpec.model_validate(raw), ValidationScope())}
    assert "should match pattern" in found[("source", "url")]
    assert "invalid secret name" in found[("source", "auth", "secret")]
    assert found[("source", "pagination", "cursor_path")] == "cursor pagination needs cursor_path"
