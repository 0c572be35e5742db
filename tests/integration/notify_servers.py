"""Real local stand-ins for the notification channels, on 127.0.0.1 only.

- `SlackSink`: a stdlib ThreadingHTTPServer answering webhook POSTs like Slack (`200 ok`), with scripted failures
  (500, 429 + Retry-After, 404 no_service) per webhook path.
- `SmtpServer`: aiosmtpd on a free port with STARTTLS (a self-signed certificate for 127.0.0.1 made with
  `cryptography`, which the client verifies through `ca_file`) and a username/password authenticator; it refuses
  mail before STARTTLS and AUTH, so an accepted message proves both happened.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

SMTP_USER = "alerts"
SMTP_PASSWORD = "s3cret-pw"


@dataclass
class SlackRequest:
    path: str
    payload: dict[str, Any]
    status: int
    at: float


class SlackSink:
    def __init__(self) -> None:
        self.requests: list[SlackRequest] = []
        self._script: dict[str, deque[tuple[int, str, dict[str, str]]]] = defaultdict(deque)
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with sink._lock:
                    queue = sink._script[self.path]
                    status, text, headers = queue.popleft() if queue else (200, "ok", {})
                    sink.requests.append(SlackRequest(self.path, json.loads(body), status, time.monotonic()))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(text.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def script(self, path: str, *responses: tuple[int, str] | tuple[int, str, dict[str, str]]) -> None:
        """The next answers for `path`, in order; afterwards 200 ok again."""
        with self._lock:
            for response in responses:
                status, text, *rest = response
                self._script[path].append((status, text, rest[0] if rest else {}))

    def accepted(self, path: str) -> list[dict[str, Any]]:
        return [r.payload for r in self.requests if r.path == path and r.status == 200]

    def attempts(self, path: str) -> list[SlackRequest]:
        return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    authenticated: bool

    def text(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None
        return str(part.get_content())

    def html(self) -> str:
        part = self.message.get_body(("html",))
        assert part is not None
        return str(part.get_content())


@dataclass
class SmtpServer:
    port: int
    ca_file: str
    received: list[ReceivedMail] = field(default_factory=list)
    controller: Any = None

    def to(self, address: str) -> list[ReceivedMail]:
        return [m for m in self.received if address in m.rcpt_tos]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def start_smtp(folder: Path) -> SmtpServer:
    cert_file, key_file = self_signed_certificate(folder)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_file, key_file)
    server = SmtpServer(port=free_port(), ca_file=str(cert_file))

    class Handler:
        async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
            message = message_from_bytes(envelope.original_content or envelope.content, policy=default_policy)
            server.received.append(
                ReceivedMail(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    message,  # type: ignore[arg-type]
                    session.ssl is not None,
                    bool(session.authenticated),
                )
            )
            return "250 Message accepted for delivery"

    def authenticator(smtp: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            SMTP_USER.encode(),
            SMTP_PASSWORD.encode(),
        )
        return AuthResult(success=ok, handled=False)

    server.controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=server.port,
        tls_context=tls,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=True,
    )
    server.controller.start()
    return server
