"""A small MaxMind DB file written at test time (no real GeoIP file is shipped)."""

from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet

# Documentation ranges (RFC 5737, RFC 3849): no real client has these addresses.
GERMAN = "203.0.113.0/25"
FRENCH = "203.0.113.128/25"
REGISTERED_ONLY = "198.51.100.0/24"  # a record that has only `registered_country`
IPV6_GERMAN = "2001:db8::/32"


def write_country_database(path: Path) -> Path:
    """Write a GeoIP2-Country-shaped file mapping the ranges above; return its path."""
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="GeoIP2-Country",
        languages=["en"],
        description="countries for tests",
    )
    country = {"DE": "Germany", "FR": "France", "NL": "Netherlands"}

    def record(field: str, code: str) -> dict[str, object]:
        return {field: {"iso_code": code, "names": {"en": country[code]}}}

    writer.insert_network(IPSet([GERMAN, IPV6_GERMAN]), record("country", "DE"))
    writer.insert_network(IPSet([FRENCH]), record("country", "FR"))
    writer.insert_network(IPSet([REGISTERED_ONLY]), record("registered_country", "NL"))
    writer.to_db_file(str(path))
    return path
