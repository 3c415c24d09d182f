"""Proxy headers: take the client address and scheme from `X-Forwarded-*` set by trusted proxies."""

import functools
import ipaddress
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ENFORCE_PROXY_LIST = "TRUSTED_PROXIES must list at least one proxy address or CIDR range."
SCHEMES = {
    "http": {"http": "http", "https": "https"},
    # Proxies usually report the scheme of the upgrade request itself.
    "websocket": {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"},
}
_MAX_PORT = 65535
# Behind a balancer most requests repeat a few proxy and client addresses, and `ipaddress`
# parses one in ~5 µs. Bounded, since clients write these headers.
_CACHED_ADDRESSES = 4096


def parse_networks(trusted_proxies: Sequence[str]) -> tuple[IPNetwork, ...]:
    """Parse `["10.0.0.0/8", "::1"]` into networks; raise ValueError naming a bad entry."""
    if isinstance(trusted_proxies, str) or not trusted_proxies:
        raise ValueError(ENFORCE_PROXY_LIST)
    networks = []
    for entry in trusted_proxies:
        try:
            networks.append(ipaddress.ip_network(entry.strip()))
        except ValueError as exc:
            raise ValueError(
                f"TRUSTED_PROXIES entry {entry!r} is not an IP or CIDR: {exc}"
            ) from None
    return tuple(networks)


@functools.lru_cache(maxsize=_CACHED_ADDRESSES)
def parse_address(value: str) -> IPAddress | None:
    """Parse an address as a proxy reports it: bare, `ip:port` or `[ipv6]:port`; else None."""
    value = value.strip()
    if value.startswith("["):
        host, bracket, port = value[1:].partition("]")
        if not bracket or (port and not _is_port(port)):
            return None
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
        if not _is_port(":" + port):
            return None
    else:
        host = value
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as `::ffff:a.b.c.d`.
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


@functools.lru_cache(maxsize=_CACHED_ADDRESSES)
def _canonical(value: str) -> str:
    """The address in `value` as `ipaddress` writes it (a checked hop, so never None)."""
    return str(parse_address(value))


def _is_port(suffix: str) -> bool:
    digits = suffix.removeprefix(":")
    return (
        suffix.startswith(":")
        and 0 < len(digits) <= len(str(_MAX_PORT))
        and digits.isascii()
        and digits.isdigit()
        and int(digits) <= _MAX_PORT
    )


def _header_values(scope: Scope, name: bytes) -> list[str]:
    """Every comma-separated item of every `name` header, in the order they arrived."""
    joined = ",".join(value.decode("latin-1") for key, value in scope["headers"] if key == name)
    return [item.strip() for item in joined.split(",")] if joined else []


class ProxyHeadersMiddleware:
    """Trust `X-Forwarded-For` and `X-Forwarded-Proto` only when the direct peer is a proxy of ours.

    Each proxy appends the address it received the request from, so the header is read from the
    right: trusted proxies are skipped and the first untrusted address is the client. Addresses
    to its left were written by that client and prove nothing. If every address is trusted, the
    left-most is the client; an entry that is not an IP address stops the walk at the last
    address that was vouched for, so a forged value is never taken as the client. The scheme is
    the `X-Forwarded-Proto` item of the chosen hop when the lists line up, else the right-most.
    The scope is changed in place, so outer layers (access log, rate limiter) see the result.

    Uvicorn (0.54) has the same walk and CIDRs, and runs it by default for peers in
    `$FORWARDED_ALLOW_IPS` (loopback unless set): serve with `--no-proxy-headers`. Ours is the
    one used because it is set in one place (`TRUST_PROXY_HEADERS`, `TRUSTED_PROXIES`, checked
    at start-up, where uvicorn silently keeps a mistyped entry as a literal), it never makes a
    non-IP string the client (uvicorn does), and it behaves the same under any server and in
    tests.
    """

    def __init__(self, app: ASGIApp, trusted_proxies: Sequence[str]) -> None:
        self.app = app
        self.networks = parse_networks(trusted_proxies)
        self._trusted = functools.lru_cache(maxsize=_CACHED_ADDRESSES)(self._in_networks)

    def is_trusted(self, address: IPAddress | None) -> bool:
        """Whether `address` is one of the configured proxies."""
        return address is not None and self._trusted(address)

    def _in_networks(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in SCHEMES:
            await self.app(scope, receive, send)
            return

        peer = scope.get("client")
        if peer and self.is_trusted(parse_address(peer[0])):
            hops = _header_values(scope, b"x-forwarded-for")
            chosen = self.client_hop(hops)
            if chosen is not None:
                scope["client"] = (_canonical(hops[chosen]), 0)
            scheme = self.forwarded_scheme(scope, chosen, len(hops))
            if scheme is not None:
                scope["scheme"] = scheme

        await self.app(scope, receive, send)

    def client_hop(self, hops: list[str]) -> int | None:
        """Index in `hops` of the client: the right-most untrusted, or the last vouched for."""
        chosen = None
        for index in range(len(hops) - 1, -1, -1):
            address = parse_address(hops[index])
            if address is None:
                break
            chosen = index
            if not self.is_trusted(address):
                break
        return chosen

    @staticmethod
    def forwarded_scheme(scope: Scope, chosen: int | None, hop_count: int) -> str | None:
        """The scheme the client used, if the proxies reported an acceptable one."""
        protos = _header_values(scope, b"x-forwarded-proto")
        if not protos:
            return None
        proto = protos[chosen] if chosen is not None and len(protos) == hop_count else protos[-1]
        return SCHEMES[scope["type"]].get(proto.lower())
