"""Where a tenant's outbound HTTP may go: public addresses only, checked once and then connected to as checked.

Why this shape: a URL check that resolves the host and then lets the HTTP library resolve it again can be beaten by
DNS rebinding (the name answers a public address to the check and 127.0.0.1 or the metadata server to the connect).
So `check_destination` resolves the host exactly once, classifies every address it got, and returns them; the HTTP
client (http_client) connects to those addresses themselves, keeping the host name only for the Host header and TLS.

Refused on every runtime, whatever the settings say (`Refusal.always`): the cloud metadata server (by address and by
name), link-local, multicast, unspecified, reserved and "this network" addresses, IPv6 site-local, and IPv6 forms
that carry an IPv4 address inside (IPv4-mapped, IPv4-compatible, SIIT-translated, 6to4, Teredo, local-use NAT64),
since the network may route them to that IPv4 address. The well-known NAT64 prefix 64:ff9b::/96 is judged by the
IPv4 address it embeds: IPv6-only networks reach public IPv4 APIs through it.

Refused unless the runtime's allow-list covers them (`Refusal.always` false): loopback, RFC 1918, carrier-grade NAT
(100.64/10), unique-local IPv6 (fc00::/7) and every other address that is not globally routable. The allow-list is
`Settings.egress_allow_private` (env `CLOUDACT_EGRESS_ALLOW_PRIVATE`): local runtimes default to loopback + RFC 1918
so tests and development reach local servers; the `gcp` runtime allows none.

Odd IPv4 spellings (`2852039166`, `0251.0376.0251.0376`, `0xa9fea9fe`, `127.1`) are normalised by the resolver
(inet_aton rules) into the address that would really be connected to, and that address is what gets classified.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shared.errors import TerminalError, TransientError
from shared.runtime.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]
"""(host, port) -> the addresses to connect to, in order; raises OSError (socket.gaierror) when the name is unknown."""

LOCAL_DEVELOPMENT_NETWORKS: tuple[str, ...] = (
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
)
"""The allow-list local runtimes (embedded, emulators) use unless `egress_allow_private` says otherwise."""

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # GCP, AWS, Azure instance metadata
        "169.254.170.2",  # AWS ECS task credentials
        "fd00:ec2::254",  # AWS IMDS over IPv6 (a unique-local address: allow-lists must not let it through)
        "100.100.100.200",  # Alibaba Cloud metadata (inside carrier-grade NAT space)
        "192.0.0.192",  # Oracle Cloud metadata
    )
)
METADATA_HOST_NAMES = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"}
)

_ALWAYS_REFUSED_V4: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), why)
    for net, why in (
        ("0.0.0.0/8", "'this network' (Linux connects 0.x.x.x to the local host)"),
        ("169.254.0.0/16", "link-local"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
    )
)
_ALWAYS_REFUSED_V6: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), why)
    for net, why in (
        ("::/128", "unspecified"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
        ("::ffff:0:0/96", "IPv4-mapped IPv6"),
        ("::ffff:0:0:0/96", "IPv4-translated IPv6 (SIIT)"),
        ("::/96", "IPv4-compatible IPv6"),
        ("2002::/16", "6to4"),
        ("2001::/32", "Teredo"),
        ("64:ff9b:1::/48", "local-use NAT64"),
    )
)
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True)
class Refusal:
    reason: str
    always: bool
    """True: refused on every runtime, allow-list or not (metadata, link-local, embedded-IPv4 forms ...)."""


def classify_address(address: IPAddress) -> Refusal | None:
    """Why an address may not be connected to, or None for a public (globally routable) one."""
    if address in METADATA_ADDRESSES:
        return Refusal("cloud metadata server", always=True)
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_WELL_KNOWN:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
            inner = classify_address(embedded)
            return None if inner is None else Refusal(f"NAT64 of {embedded}, {inner.reason}", always=True)
        if address == ipaddress.IPv6Address("::1"):  # inside ::/96 below, but plain loopback
            return Refusal("loopback", always=False)
        for net6, why in _ALWAYS_REFUSED_V6:
            if address in net6:
                carried = _embedded_ipv4(address)
                return Refusal(f"{why} of {carried}" if carried else why, always=True)
        if address in ipaddress.IPv6Network("fc00::/7"):
            return Refusal("unique-local IPv6", always=False)
    else:
        for net4, why in _ALWAYS_REFUSED_V4:
            if address in net4:
                return Refusal(why, always=True)
        if address in ipaddress.IPv4Network("100.64.0.0/10"):
            return Refusal("carrier-grade NAT", always=False)
    if address.is_loopback:
        return Refusal("loopback", always=False)
    if address.is_private:
        return Refusal("private", always=False)
    if not address.is_global:
        return Refusal("not globally routable", always=False)
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped / -compatible / 6to4 / Teredo address carries (for the message)."""
    if address.teredo:
        return address.teredo[1]
    if address.ipv4_mapped or address.sixtofour:
        return address.ipv4_mapped or address.sixtofour
    if int(address) >> 32 in (0, 0xFFFF_0000):  # ::a.b.c.d and ::ffff:0:a.b.c.d
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


@dataclass(frozen=True)
class EgressPolicy:
    allowed_private: tuple[Network, ...] = ()
    """Non-public networks this runtime may reach anyway (local development); never overrides `Refusal.always`."""

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str]) -> EgressPolicy:
        return cls(tuple(ipaddress.ip_network(c, strict=False) for c in cidrs))

    def refusal(self, address: IPAddress) -> Refusal | None:
        refused = classify_address(address)
        if refused is None or refused.always:
            return refused
        if any(address.version == net.version and address in net for net in self.allowed_private):
            return None
        return refused


def egress_policy(settings: Settings) -> EgressPolicy:
    """Nothing non-public on gcp, whatever the settings; locally `egress_allow_private`, else loopback + RFC 1918."""
    if settings.runtime == "gcp":
        return EgressPolicy()
    if settings.egress_allow_private is not None:
        return EgressPolicy.from_cidrs(settings.egress_allow_private)
    return EgressPolicy.from_cidrs(LOCAL_DEVELOPMENT_NETWORKS)


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for (host, port), first answer first, without repeats."""
    seen: list[str] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = str(sockaddr[0])
        if address not in seen:
            seen.append(address)
    return seen


@dataclass(frozen=True)
class CheckedUrl:
    url: str
    scheme: str
    host: str
    """As written in the URL (lower-cased by urlsplit): the Host header and TLS name."""
    port: int
    target: str
    """Path and query: what goes on the request line."""
    addresses: tuple[str, ...]
    """The checked addresses, in the resolver's order: the only places the request may connect to."""

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


def check_destination(url: str, policy: EgressPolicy, resolve: Resolver = system_resolver) -> CheckedUrl:
    """Resolve the URL's host once and refuse it unless every address is allowed; TerminalError says why."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:  # a port that is not a number, or out of range
        raise TerminalError(f"url {url!r}: {exc}") from exc
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise TerminalError(f"url {url!r}: only http(s)://host/... URLs are allowed")
    if parts.username is not None or parts.password is not None:
        raise TerminalError(f"url {url!r}: credentials in the URL are not allowed (use source.auth)")
    if host.rstrip(".") in METADATA_HOST_NAMES:
        raise TerminalError(f"url host {host!r} is the cloud metadata server: refused")
    try:
        answers = resolve(host.split("%")[0] if ":" in host else host, port)
    except (OSError, UnicodeError) as exc:
        raise TransientError(f"cannot resolve {host!r}: {exc}") from exc
    if not answers:
        raise TransientError(f"cannot resolve {host!r}: no address")
    for answer in answers:
        try:
            address = ipaddress.ip_address(answer.split("%")[0])
        except ValueError as exc:
            raise TerminalError(f"url host {host!r} resolved to {answer!r}, not an address: refused") from exc
        refused = policy.refusal(address)
        if refused is not None:
            shown = host if host == str(address) else f"{host!r} resolves to {address}"
            raise TerminalError(
                f"url host {shown} ({refused.reason}): refused, outbound HTTP goes to public hosts only"
            )
    target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    return CheckedUrl(url, parts.scheme, host, port, target, tuple(answers))
