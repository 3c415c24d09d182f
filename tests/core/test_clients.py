"""Who a client is for quotas and throttles (app/core/clients.py): an IPv4 address, or the
/64 network of an IPv6 one, which a single subscriber holds whole.
"""

import pytest

from app.core.clients import client_identity


@pytest.mark.parametrize(
    ("host", "identity"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:fffe", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2:0:0:0:7", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        # A dual-stack socket reports IPv4 peers so: each is its own client, not one /64.
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::1", "::/64"),
        ("unknown", "unknown"),
        ("testclient", "testclient"),
        ("not:an:address", "not:an:address"),
    ],
    ids=[
        "ipv4",
        "ipv6",
        "ipv6-same-network",
        "ipv6-spelled-long",
        "ipv6-next-network",
        "ipv4-mapped",
        "ipv4-mapped-other",
        "ipv6-scoped",
        "loopback",
        "unknown",
        "a-name",
        "not-an-address",
    ],
)
def test_a_client_is_its_ipv4_address_or_its_ipv6_network(host: str, identity: str) -> None:
    assert client_identity(host) == identity
