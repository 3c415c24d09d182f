"""Country lookups in a MaxMind DB file built at test time."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.infra.geoip import CountryDatabase
from tests.geoip import write_country_database


@pytest.fixture
def countries(tmp_path: Path) -> Iterator[CountryDatabase]:
    database = CountryDatabase(write_country_database(tmp_path / "countries.mmdb"))
    yield database
    database.close()


@pytest.mark.parametrize(
    ("address", "country"),
    [
        ("203.0.113.7", "DE"),
        ("203.0.113.200", "FR"),
        ("2001:db8::1", "DE"),
        ("198.51.100.4", "NL"),  # only the registered country is known
        ("192.0.2.1", None),  # not in the file
        ("10.1.2.3", None),
        ("testclient", None),  # not an address (the test client's host)
        ("", None),
    ],
)
def test_addresses_map_to_their_country(
    countries: CountryDatabase, address: str, country: str | None
) -> None:
    assert countries.country(address) == country


def test_a_missing_file_fails_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        CountryDatabase(tmp_path / "missing.mmdb")
