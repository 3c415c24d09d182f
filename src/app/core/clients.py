"""Who a client is for quotas and throttles: its IPv4 address, or its IPv6 /64 network.

An IPv6 subscriber is delegated a /64 at least (RFC 6177) and may send each request from a
fresh address in it; counted per address, one client would hold 2**64 quotas. The rate
limiter's address key and the login throttle's client both come from `client_identity`.
"""

import functools
import ipaddress

IPV6_CLIENT_PREFIX = 64
_HOST_BITS = 128 - IPV6_CLIENT_PREFIX
# Bounded: clients choose their addresses. Parsing one costs ~5 µs; IPv4 is never parsed.
_CACHED_ADDRESSES = 4096


def client_identity(host: str) -> str:
    """Return the client named by `host`: IPv4 as is, IPv6 as its `/64`, anything else as is.

    An IPv4 peer of a dual-stack socket (`::ffff:a.b.c.d`) is its IPv4 address, not the one
    /64 every such peer shares.
    """
    if ":" not in host:
        return host  # IPv4, or a name ("unknown", a test client's)
    return _ipv6_identity(host)


@functools.lru_cache(maxsize=_CACHED_ADDRESSES)
def _ipv6_identity(host: str) -> str:
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    # Built from the integer: a scope id (`fe80::1%eth0`) names an interface, not a client.
    prefix = int(address) >> _HOST_BITS << _HOST_BITS
    return str(ipaddress.IPv6Network((prefix, IPV6_CLIENT_PREFIX)))
