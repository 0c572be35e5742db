"""A real HTTP server in front of bqemulator that records what the BigQuery adapter sends and enforces the one job rule
bqemulator lacks: job ids are unique per project, so inserting a job whose id exists answers 409 Conflict
(https://cloud.google.com/bigquery/docs/running-jobs#generate-jobid). bqemulator stores neither labels nor
maximumBytesBilled and re-runs a repeated job id, so tests read what was sent from `requests` instead.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@pytest.fixture(name="recorder")
def recorder_fixture() -> Iterator[BigQueryRecorder]:
    """A recorder in front of bqemulator (skips the test when bqemulator is not running; fails under CI=true)."""
    from tests.processor_support import require_bigquery

    proxy = BigQueryRecorder(require_bigquery())
    yield proxy
    proxy.close()


_HOP_HEADERS = {"connection", "transfer-encoding", "keep-alive", "content-length", "host"}


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    body: Any
    status: int


class BigQueryRecorder:
    """Forwards every request to `upstream` (bqemulator) and records it; `url` is what the client should use."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.requests: list[Recorded] = []
        self.job_ids: set[str] = set()
        self.refuse_dataset_creation = False
        """Answer datasets.insert with BigQuery's 403, as for an identity without bigquery.datasets.create (bqemulator
        checks no IAM)."""
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def job_inserts(self) -> list[dict[str, Any]]:
        """Bodies of every jobs.insert that reached bqemulator or was refused as a duplicate (query and load)."""
        return [r.body for r in self.requests if r.method == "POST" and _is_job_insert(r.path)]

    def forwarded_job_ids(self) -> list[str]:
        return [
            r.body["jobReference"]["jobId"]
            for r in self.requests
            if r.method == "POST" and _is_job_insert(r.path) and r.status < 300
        ]

    def insert_ids(self) -> list[str]:
        return [
            row["insertId"]
            for r in self.requests
            if r.path.split("?")[0].endswith("/insertAll")
            for row in r.body["rows"]
        ]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = _json(raw)
                if (
                    recorder.refuse_dataset_creation
                    and self.command == "POST"
                    and self.path.split("?")[0].endswith("/datasets")
                ):
                    recorder._record(self.command, self.path, body, 403)
                    self._answer(403, _access_denied(), {"Content-Type": "application/json"})
                    return
                if self.command == "POST" and _is_job_insert(self.path) and isinstance(body, dict):
                    job_id = str((body.get("jobReference") or {}).get("jobId") or "")
                    with recorder._lock:
                        duplicate = bool(job_id) and job_id in recorder.job_ids
                        recorder.job_ids.add(job_id)
                    if duplicate:
                        recorder._record(self.command, self.path, body, 409)
                        self._answer(409, _already_exists(job_id), {"Content-Type": "application/json"})
                        return
                status, headers, payload = recorder._send(self.command, self.path, raw, dict(self.headers))
                recorder._record(self.command, self.path, body, status)
                self._answer(status, payload, headers)

            def _answer(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() not in _HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        return Handler

    def _record(self, method: str, path: str, body: Any, status: int) -> None:
        with self._lock:
            self.requests.append(Recorded(method, path, body, status))

    def _send(self, method: str, path: str, raw: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.upstream.hostname or "127.0.0.1", self.upstream.port or 80, timeout=60)
        try:
            forwarded = {k: v for k, v in headers.items() if k.lower() not in _HOP_HEADERS}
            conn.request(method, path, body=raw or None, headers=forwarded)
            response = conn.getresponse()
            payload = response.read()
            return response.status, dict(response.getheaders()), payload
        finally:
            conn.close()


def _is_job_insert(path: str) -> bool:
    return path.split("?")[0].rstrip("/").endswith("/jobs")


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        return None


def _already_exists(job_id: str) -> bytes:
    """BigQuery's answer to a duplicate job id (status ALREADY_EXISTS, reason duplicate)."""
    message = f"Already Exists: Job cloudact-test:US.{job_id}"
    error = {
        "code": 409,
        "message": message,
        "errors": [{"message": message, "domain": "global", "reason": "duplicate"}],
    }
    return json.dumps({"error": {**error, "status": "ALREADY_EXISTS"}}).encode()


def _access_denied() -> bytes:
    message = "Access Denied: Project cloudact-test: User does not have bigquery.datasets.create permission"
    errors = [{"message": message, "domain": "global", "reason": "accessDenied"}]
    return json.dumps(
        {"error": {"code": 403, "message": message, "errors": errors, "status": "PERMISSION_DENIED"}}
    ).encode()
