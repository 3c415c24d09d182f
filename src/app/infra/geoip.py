"""Which country an address is in, from a MaxMind DB file (GeoIP2/GeoLite2 Country or City)."""

from pathlib import Path
from typing import Any

import maxminddb


class CountryDatabase:
    """Looks addresses up in a MaxMind DB file, memory-mapped: a lookup takes microseconds.

    Lookups run on the event loop, like a dictionary read; the file is opened once per
    process (`GEOIP_DATABASE_PATH`) and closed with the other resources. Replace the file and
    restart to update it.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._reader = maxminddb.open_database(str(self.path))

    def country(self, address: str) -> str | None:
        """Return the ISO 3166 country code of `address`, or None when it is unknown.

        Unknown: not in the file, not an IP address (a unix socket, `testclient`), or a
        record without a country. The country the address is used in comes first; the
        country it is registered to stands in when the file has only that.
        """
        try:
            record: Any = self._reader.get(address)
        except ValueError:  # not an IP address, or IPv6 in an IPv4-only file
            return None
        if not isinstance(record, dict):
            return None
        for field in ("country", "registered_country"):
            place = record.get(field)
            code = place.get("iso_code") if isinstance(place, dict) else None
            if isinstance(code, str):
                return code.upper()
        return None

    def close(self) -> None:
        """Release the memory map."""
        self._reader.close()
