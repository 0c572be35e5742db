"""Outbound HTTP guard: every non-public address form is refused, the request connects to the address that was
checked (no second lookup), and redirects are followed only through checked hops. Real servers on 127.0.0.x."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shared.errors import TerminalError
from shared.processors.egress_guard import (
    EgressPolicy,
    check_destination,
    classify_address,
    egress_policy,
    system_resolver,
)
from shared.processors.http_client import JsonClient, RateLimiter, RetryPolicy
from shared.runtime.settings import Settings
from tests.integration.notify_servers import self_signed_certificate

# (address, refused on every runtime?, words the reason must contain); None in the middle: public, accepted.
ADDRESSES: list[tuple[str, bool | None, str]] = [
    ("169.254.169.254", True, "metadata"),
    ("fd00:ec2::254", True, "metadata"),
    ("169.254.170.2", True, "metadata"),
    ("100.100.100.200", True, "metadata"),
    ("169.254.1.1", True, "link-local"),
    ("fe80::1", True, "link-local"),
    ("::ffff:169.254.169.254", True, "IPv4-mapped IPv6 of 169.254.169.254"),
    ("::ffff:127.0.0.1", True, "IPv4-mapped"),
    ("::ffff:8.8.8.8", True, "IPv4-mapped"),  # no legitimate use: an IPv4 address is written as one
    ("::127.0.0.1", True, "IPv4-compatible IPv6 of 127.0.0.1"),
    ("::a9fe:a9fe", True, "IPv4-compatible"),
    ("::ffff:0:a9fe:a9fe", True, "SIIT"),
    ("64:ff9b::a9fe:a9fe", True, "NAT64 of 169.254.169.254"),
    ("64:ff9b::7f00:1", True, "NAT64 of 127.0.0.1"),
    ("64:ff9b::a00:1", True, "NAT64 of 10.0.0.1"),
    ("64:ff9b:1::a9fe:a9fe", True, "local-use NAT64"),
    ("2002:a9fe:a9fe::1", True, "6to4 of 169.254.169.254"),
    ("2002:0808:0808::1", True, "6to4"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", True, "Teredo"),
    ("224.0.0.1", True, "multicast"),
    ("ff02::1", True, "multicast"),
    ("0.0.0.0", True, "this network"),
    ("0.1.2.3", True, "this network"),
    ("::", True, "unspecified"),
    ("240.0.0.1", True, "reserved"),
    ("255.255.255.255", True, "reserved"),
    ("fec0::1", True, "site-local"),
    ("127.0.0.1", False, "loopback"),
    ("127.8.9.10", False, "loopback"),
    ("::1", False, "loopback"),
    ("10.1.2.3", False, "private"),
    ("172.16.0.1", False, "private"),
    ("172.31.255.255", False, "private"),
    ("192.168.1.1", False, "private"),
    ("100.64.0.1", False, "carrier-grade NAT"),
    ("100.127.255.254", False, "carrier-grade NAT"),
    ("fc00::1", False, "unique-local"),
    ("fd12:3456::1", False, "unique-local"),
    ("192.0.2.1", False, ""),  # documentation
    ("198.18.0.1", False, ""),  # benchmarking
    ("2001:db8::1", False, ""),  # documentation
    ("8.8.8.8", None, ""),
    ("1.1.1.1", None, ""),
    ("93.184.216.34", None, ""),
    ("172.32.0.1", None, ""),  # just outside 172.16/12
    ("100.128.0.1", None, ""),  # just outside 100.64/10
    ("2606:4700:4700::1111", None, ""),
    ("2a00:1450:4001:80b::200e", None, ""),
    ("64:ff9b::808:808", None, ""),  # NAT64 of a public address: how IPv6-only networks reach IPv4 APIs
]


@pytest.mark.parametrize(("address", "always", "reason"), ADDRESSES)
def test_the_classifier_knows_every_address_form(address: str, always: bool | None, reason: str) -> None:
    refused = classify_address(ipaddress.ip_address(address))
    if always is None:
        assert refused is None
        return
    assert refused is not None and refused.always is always and reason in refused.reason


# Spellings of a host, including the ones inet_aton accepts: the resolver turns them into the real address.
HOSTS = [
    ("http://169.254.169.254/computeMetadata/v1/", "metadata"),
    ("http://[::ffff:169.254.169.254]/", "IPv4-mapped"),
    ("http://[::ffff:a9fe:a9fe]/", "IPv4-mapped"),
    ("http://[64:ff9b::a9fe:a9fe]/", "NAT64"),
    ("http://[64:ff9b::169.254.169.254]/", "NAT64"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "metadata"),
    ("http://[fe80::1%25eth0]/", "link-local"),
    ("http://2852039166/", "metadata"),
    ("http://0251.0376.0251.0376/", "metadata"),
    ("http://0xa9fea9fe/", "metadata"),
    ("http://0xA9.0xFE.0xA9.0xFE/", "metadata"),
    ("http://169.254.43518/", "metadata"),
    ("http://127.1/", "loopback"),
    ("http://0177.0.0.1/", "loopback"),
    ("http://2130706433/", "loopback"),
    ("http://0/", "this network"),
    ("http://[::]/", "unspecified"),
    ("http://[::1]:8080/", "loopback"),
    ("http://10.0.0.1/", "private"),
    ("https://100.64.1.1/", "carrier-grade NAT"),
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata server"),
    ("http://METADATA.google.internal./", "metadata server"),
    ("http://metadata/", "metadata server"),
    ("http://localhost/", "loopback"),
]


@pytest.mark.parametrize(("url", "reason"), HOSTS)
def test_urls_reaching_non_public_addresses_are_refused(url: str, reason: str) -> None:
    with pytest.raises(TerminalError, match="refused") as caught:
        check_destination(url, EgressPolicy())
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    "url", ["ftp://8.8.8.8/", "file:///etc/passwd", "gopher://8.8.8.8/", "http:///x", "http://u:p@8.8.8.8/"]
)
def test_only_plain_http_urls_are_accepted(url: str) -> None:
    with pytest.raises(TerminalError):
        check_destination(url, EgressPolicy())


def test_the_local_allow_list_never_lets_metadata_or_mapped_forms_through() -> None:
    wide_open = EgressPolicy.from_cidrs(["0.0.0.0/0", "::/0"])
    assert check_destination("http://127.0.0.1:9/", wide_open).addresses == ("127.0.0.1",)
    assert check_destination("http://[fd12::1]/", wide_open).addresses == ("fd12::1",)
    for url in ("http://169.254.169.254/", "http://[fd00:ec2::254]/", "http://[::ffff:127.0.0.1]/", "http://0/"):
        with pytest.raises(TerminalError, match="refused"):
            check_destination(url, wide_open)


def test_each_runtime_gets_its_policy() -> None:
    local = egress_policy(Settings(runtime="embedded"))
    assert local.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert local.refusal(ipaddress.ip_address("192.168.3.4")) is None
    assert local.refusal(ipaddress.ip_address("100.64.0.1")) is not None  # not in the local default
    assert local.refusal(ipaddress.ip_address("169.254.169.254")) is not None
    narrowed = egress_policy(Settings(runtime="emulators", egress_allow_private=("127.0.0.1/32",)))
    assert narrowed.refusal(ipaddress.ip_address("127.0.0.2")) is not None
    gcp = egress_policy(Settings(runtime="gcp", egress_allow_private=("127.0.0.0/8",)))
    assert gcp.refusal(ipaddress.ip_address("127.0.0.1")) is not None  # never honoured on gcp
    with pytest.raises(ValueError, match="not allowed on the gcp runtime"):
        Settings.from_env({"CLOUDACT_RUNTIME": "gcp", "CLOUDACT_EGRESS_ALLOW_PRIVATE": "10.0.0.0/8"})
    with pytest.raises(ValueError):
        Settings.from_env({"CLOUDACT_EGRESS_ALLOW_PRIVATE": "10.0.0.0/33"})
    parsed = Settings.from_env({"CLOUDACT_EGRESS_ALLOW_PRIVATE": "127.0.0.1/32, ::1/128"})
    assert parsed.egress_allow_private == ("127.0.0.1/32", "::1/128")


def test_a_name_answering_one_bad_address_among_good_ones_is_refused() -> None:
    def resolver(host: str, port: int) -> list[str]:
        return ["8.8.8.8", "169.254.169.254"]

    with pytest.raises(TerminalError, match=r"resolves to 169\.254\.169\.254"):
        check_destination("http://api.example.test/", EgressPolicy(), resolver)


# -- real servers: where the connection went ---------------------------------------------------------------------


@dataclass
class Recorder:
    name: str
    hits: list[tuple[str, str, str | None]] = field(default_factory=list)
    """(path, Host header, Authorization header) of every request."""
    redirects: dict[str, tuple[int, str]] = field(default_factory=dict)


def _serve(address: str, port: int, recorder: Recorder) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            recorder.hits.append((self.path, self.headers.get("Host", ""), self.headers.get("Authorization")))
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if self.path in recorder.redirects:
                status, location = recorder.redirects[self.path]
                self.send_response(status)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            payload = json.dumps({"server": recorder.name, "path": self.path}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((address, port), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


@dataclass
class TwoServers:
    port: int
    first: Recorder
    second: Recorder


@pytest.fixture
def two_servers() -> Iterator[TwoServers]:
    """One server on 127.0.0.1 and one on 127.0.0.2, on the same port (so only the address tells them apart)."""
    first, second = Recorder("first"), Recorder("second")
    a = _serve("127.0.0.1", 0, first)
    port = a.server_address[1]
    try:
        b = _serve("127.0.0.2", port, second)
    except OSError as exc:  # 127.0.0.2 is a loopback address on Linux; say so if a platform lacks it
        a.shutdown()
        a.server_close()
        pytest.fail(f"cannot listen on 127.0.0.2:{port}: {exc}")
    yield TwoServers(port, first, second)
    for server in (a, b):
        server.shutdown()
        server.server_close()


def _client(policy: EgressPolicy, resolve: Any = system_resolver, **kwargs: Any) -> JsonClient:
    return JsonClient(
        retries=RetryPolicy(max_attempts=1),
        limiter=RateLimiter(1000),
        timeout_seconds=5,
        seconds_left=lambda: 60.0,
        policy=policy,
        resolve=resolve,
        **kwargs,
    )


def test_the_connection_goes_to_the_checked_address_not_a_second_lookup(
    two_servers: TwoServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name answers 127.0.0.1 (allowed) once, then 127.0.0.2 (not allowed) to anyone who asks
    again. The request must reach the first server, with the name in the Host header, and ask the name only once."""
    real_getaddrinfo = socket.getaddrinfo
    asked: list[str] = []

    def rebinding_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "api.rebind.test":
            asked.append(host)
            host = "127.0.0.1" if len(asked) == 1 else "127.0.0.2"
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_getaddrinfo)
    client = _client(EgressPolicy.from_cidrs(["127.0.0.1/32"]))
    document, _ = client.request("GET", f"http://api.rebind.test:{two_servers.port}/v1/items", {})
    assert document == {"server": "first", "path": "/v1/items"}
    assert asked == ["api.rebind.test"]
    assert two_servers.first.hits == [("/v1/items", f"api.rebind.test:{two_servers.port}", None)]
    assert two_servers.second.hits == []
    # The next request asks again (and is refused: the answer is now outside the allow-list), still no connection.
    with pytest.raises(TerminalError, match=r"resolves to 127\.0\.0\.2 \(loopback\): refused"):
        client.request("GET", f"http://api.rebind.test:{two_servers.port}/v1/items", {})
    assert two_servers.second.hits == [] and len(two_servers.first.hits) == 1


def test_a_public_first_answer_is_where_the_connection_goes(two_servers: TwoServers) -> None:
    """The resolver answers a public address first and 127.0.0.1 (where a server listens) second: the connection
    goes to the first answer; 127.0.0.1 is never reached (here the gcp policy refuses the pair outright)."""
    answers = {"api.example.test": ["8.8.8.8", "127.0.0.1"]}
    with pytest.raises(TerminalError, match=r"resolves to 127\.0\.0\.1"):
        _client(EgressPolicy(), lambda host, port: answers[host]).request(
            "GET", f"http://api.example.test:{two_servers.port}/", {}
        )
    allow_loopback = EgressPolicy.from_cidrs(["127.0.0.0/8"])
    answers["api.example.test"] = ["127.0.0.2", "127.0.0.1"]
    document, _ = _client(allow_loopback, lambda host, port: answers[host]).request(
        "GET", f"http://api.example.test:{two_servers.port}/x", {}
    )
    assert document["server"] == "second" and two_servers.first.hits == []


def test_redirects_are_followed_through_checked_hops_only(two_servers: TwoServers) -> None:
    port = two_servers.port
    first, second = two_servers.first, two_servers.second
    policy = EgressPolicy.from_cidrs(["127.0.0.0/8"])
    first.redirects["/moved"] = (301, "/v2/items")
    first.redirects["/elsewhere"] = (302, f"http://127.0.0.2:{port}/landed")
    first.redirects["/metadata"] = (302, "http://169.254.169.254/computeMetadata/v1/")
    first.redirects["/mapped"] = (307, f"http://[::ffff:127.0.0.1]:{port}/x")
    first.redirects["/loop"] = (302, "/loop")
    first.redirects["/post"] = (307, "/v2/items")
    auth = {"Authorization": "Bearer t0ken", "X-Api-Key": "k3y"}

    client = _client(policy, sensitive_headers=frozenset({"x-api-key"}))
    document, _ = client.request("GET", f"http://127.0.0.1:{port}/moved", auth)
    assert document == {"server": "first", "path": "/v2/items"} and client.redirects_followed == 1
    assert first.hits[-1] == ("/v2/items", f"127.0.0.1:{port}", "Bearer t0ken")  # same origin: credentials kept

    document, _ = client.request("GET", f"http://127.0.0.1:{port}/elsewhere", auth)
    assert document["server"] == "second"
    assert second.hits == [("/landed", f"127.0.0.2:{port}", None)]  # another origin: Authorization dropped

    with pytest.raises(TerminalError, match=r"169\.254\.169\.254 \(cloud metadata server\): refused"):
        client.request("GET", f"http://127.0.0.1:{port}/metadata", auth)
    with pytest.raises(TerminalError, match="IPv4-mapped"):
        client.request("GET", f"http://127.0.0.1:{port}/mapped", auth)
    with pytest.raises(TerminalError, match="more than 5 redirects"):
        client.request("GET", f"http://127.0.0.1:{port}/loop", auth)
    assert sum(1 for path, *_ in first.hits if path == "/loop") == 6
    with pytest.raises(TerminalError, match="only GET follows redirects"):
        client.request("POST", f"http://127.0.0.1:{port}/post", auth, body={"a": 1})
    with pytest.raises(TerminalError, match="refused"):  # gcp: the first hop is refused before any connection
        _client(EgressPolicy()).request("GET", f"http://127.0.0.1:{port}/moved", auth)
    assert len([h for h in first.hits if h[0] == "/moved"]) == 1


def test_https_to_the_pinned_address_still_verifies_the_name(tmp_path: Any) -> None:
    """TLS goes to the checked address but names the host (SNI) and verifies the certificate: a server whose
    certificate is not trusted for the name is refused, terminally, before any request is sent."""
    import ssl

    cert_file, key_file = self_signed_certificate(tmp_path)  # issued to 127.0.0.1, trusted by nobody
    recorder = Recorder("tls")
    server = _serve("127.0.0.1", 0, recorder)
    seen_names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    context.sni_callback = lambda sock, server_name, ctx: seen_names.append(server_name)  # type: ignore[assignment,func-returns-value]
    server.socket = context.wrap_socket(server.socket, server_side=True)
    try:
        client = _client(EgressPolicy.from_cidrs(["127.0.0.0/8"]), lambda host, port: ["127.0.0.1"])
        with pytest.raises(TerminalError, match="TLS certificate refused"):
            client.request("GET", f"https://api.tls.test:{server.server_address[1]}/", {})
    finally:
        server.shutdown()
        server.server_close()
    assert seen_names == ["api.tls.test"] and recorder.hits == []
