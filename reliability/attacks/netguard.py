"""The drill's eyes on the network: which connections the process tried to open to metadata-server addresses, and
a local HTTP server standing in for the attacker's own endpoint (the exfiltration target and a redirector).

Connections are seen through Python's audit hook `socket.connect`, so no product code is touched. While the drill
is watching, a connection to a forbidden address is recorded and then stopped by raising from the hook: the drill
never really talks to a metadata server, even on a cloud VM where one exists.
"""

from __future__ import annotations

import ipaddress
import json
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_METADATA_V4 = ipaddress.ip_network("169.254.0.0/16")
_FORBIDDEN_V6 = (ipaddress.ip_network("fd00:ec2::254/128"), ipaddress.ip_network("fe80::/10"))


def forbidden(host: str) -> bool:
    """A link-local / metadata address in any of its IPv6 disguises (mapped, compatible, NAT64, 6to4)."""
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return address in _METADATA_V4
    if any(address in net for net in _FORBIDDEN_V6):
        return True
    packed = int(address)
    embedded = [
        address.ipv4_mapped,
        address.sixtofour,
        ipaddress.IPv4Address(packed & 0xFFFFFFFF) if packed >> 32 in (0, 0x64FF9B << 64, 0x64FF9B0001 << 48) else None,
    ]
    return any(v is not None and v in _METADATA_V4 for v in embedded)


class _Watch:
    def __init__(self) -> None:
        self.active = False
        self.seen: list[tuple[str, int]] = []
        self.lock = threading.Lock()


_WATCH = _Watch()
_INSTALLED = False


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect" or not _WATCH.active:
        return
    address = args[1] if len(args) > 1 else None
    if isinstance(address, tuple) and address and isinstance(address[0], str) and forbidden(address[0]):
        port = int(address[1]) if len(address) > 1 else 0
        with _WATCH.lock:
            _WATCH.seen.append((address[0], port))
        raise ConnectionRefusedError(f"reliability drill: connection to {address[0]} stopped")


@contextmanager
def watching() -> Iterator[list[tuple[str, int]]]:
    """Record (and stop) connections to metadata addresses while inside; yields the live list of (host, port)."""
    global _INSTALLED
    if not _INSTALLED:  # an audit hook cannot be removed: install once, switch it with `active`
        sys.addaudithook(_hook)
        _INSTALLED = True
    with _WATCH.lock:
        _WATCH.seen.clear()
    _WATCH.active = True
    try:
        yield _WATCH.seen
    finally:
        _WATCH.active = False


REDIRECTS = {
    "v4": "http://169.254.169.254:{port}/computeMetadata/v1/",
    "mapped": "http://[::ffff:169.254.169.254]:{port}/",
    "nat64": "http://[64:ff9b::a9fe:a9fe]:{port}/",
    "name": "http://metadata.google.internal:{port}/",
}


class AttackerServer:
    """127.0.0.1 HTTP server: `/records` answers one JSON record; `/redirect/<port>/<form>` answers 302 to the
    metadata address. Every request's line and headers are kept: what arrives here, the attacker has."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(f"{self.requestline}\n{self.headers}")
                match = re.match(r"^/redirect/(\d+)/(\w+)", self.path)
                if match and match.group(2) in REDIRECTS:
                    self.send_response(302)
                    self.send_header("Location", REDIRECTS[match.group(2)].format(port=match.group(1)))
                    self.end_headers()
                    return
                body = json.dumps([{"v": "attacker-endpoint"}]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="attacker-server", daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> AttackerServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
