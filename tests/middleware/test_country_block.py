"""Country blocking: blocked and allowed lists, unknown addresses, probes, and the real app."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from httpx2 import ASGITransport, AsyncClient
from pydantic import ValidationError
from starlette.middleware import Middleware

from app.core.config import Settings
from app.infra.geoip import CountryDatabase
from app.main import create_app
from app.middleware.country_block import CountryBlockMiddleware
from tests.geoip import write_country_database
from tests.harness import assert_problem, make_settings, started
from tests.middleware.apps import RENDERER, inline_app

pytestmark = pytest.mark.anyio

GERMAN, FRENCH, DUTCH, UNKNOWN = "203.0.113.7", "203.0.113.200", "198.51.100.4", "192.0.2.1"


@pytest.fixture
def geoip_file(tmp_path: Path) -> Path:
    return write_country_database(tmp_path / "countries.mmdb")


@pytest.fixture
def countries(geoip_file: Path) -> Iterator[CountryDatabase]:
    database = CountryDatabase(geoip_file)
    yield database
    database.close()


async def status_from(address: str, countries: CountryDatabase, **options: Any) -> int:
    layer = Middleware(
        CountryBlockMiddleware, country_of=countries.country, renderer=RENDERER, **options
    )
    transport = ASGITransport(app=inline_app(layer), client=(address, 4711))
    async with AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/items/1")
    if response.status_code == 403:
        assert_problem(response, 403, "country_blocked")
    return response.status_code


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"blocked": ["FR"]}, {GERMAN: 200, FRENCH: 403, DUTCH: 200, UNKNOWN: 200}),
        ({"allowed": ["DE", "NL"]}, {GERMAN: 200, FRENCH: 403, DUTCH: 200, UNKNOWN: 200}),
        ({"allowed": ["DE", "FR"], "blocked": ["FR"]}, {GERMAN: 200, FRENCH: 403, DUTCH: 403}),
        ({"blocked": ["FR"], "block_unknown": True}, {GERMAN: 200, UNKNOWN: 403}),
        ({}, {GERMAN: 200, FRENCH: 200, UNKNOWN: 200}),
    ],
)
async def test_who_is_refused(
    countries: CountryDatabase, options: dict[str, Any], expected: dict[str, int]
) -> None:
    got = {address: await status_from(address, countries, **options) for address in expected}
    assert got == expected


async def test_probes_answer_from_anywhere(countries: CountryDatabase) -> None:
    layer = Middleware(
        CountryBlockMiddleware,
        country_of=countries.country,
        renderer=RENDERER,
        blocked=["FR"],
        exempt=("/items",),
    )
    transport = ASGITransport(app=inline_app(layer), client=(FRENCH, 4711))
    async with AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/items/1")).status_code == 200


def test_country_codes_must_be_iso_alpha_2(countries: CountryDatabase) -> None:
    with pytest.raises(ValueError, match="alpha-2"):
        CountryBlockMiddleware(
            inline_app(), country_of=countries.country, renderer=RENDERER, blocked=["fra"]
        )


# Through the real app: settings, the client after proxy handling, off without a file.


async def test_the_app_blocks_by_the_address_its_trusted_proxy_reports(
    settings: Settings, geoip_file: Path
) -> None:
    async with started(
        settings,
        GEOIP_DATABASE_PATH=str(geoip_file),
        GEOIP_BLOCKED_COUNTRIES="fr",
        TRUST_PROXY_HEADERS=True,
        TRUSTED_PROXIES="127.0.0.1",
    ) as (_, client):
        # The test client connects from "testclient", as a proxy on loopback would not: pose
        # as that proxy by sending from 127.0.0.1.
        transport: Any = client._transport
        transport.client = ("127.0.0.1", 4711)
        french = await client.get("/api/v1/meta", headers={"X-Forwarded-For": FRENCH})
        german = await client.get("/api/v1/meta", headers={"X-Forwarded-For": GERMAN})
        probe = await client.get("/api/v1/health/live", headers={"X-Forwarded-For": FRENCH})
    assert_problem(french, 403, "country_blocked")
    assert (german.status_code, probe.status_code) == (200, 200)


async def test_without_a_file_nothing_is_blocked(settings: Settings) -> None:
    async with started(settings, GEOIP_BLOCKED_COUNTRIES="FR,DE") as (app, client):
        transport: Any = client._transport
        transport.client = (FRENCH, 4711)
        response = await client.get("/api/v1/meta")
    assert response.status_code == 200
    installed: list[Any] = [layer.cls for layer in app.user_middleware]
    assert CountryBlockMiddleware not in installed


def test_country_settings_are_checked() -> None:
    assert make_settings(GEOIP_ALLOWED_COUNTRIES='["de", " nl"]').geoip.allowed_countries == [
        "DE",
        "NL",
    ]
    with pytest.raises(ValidationError, match="GEOIP_BLOCKED_COUNTRIES"):
        make_settings(GEOIP_BLOCKED_COUNTRIES="Germany")


@pytest.mark.parametrize(
    "rule", [{"GEOIP_BLOCKED_COUNTRIES": "fr"}, {"GEOIP_UNKNOWN": "block"}, {}]
)
def test_the_document_lists_the_403_wherever_blocking_can_refuse(
    geoip_file: Path, rule: dict[str, str]
) -> None:
    app = create_app(make_settings(GEOIP_DATABASE_PATH=str(geoip_file), **rule))
    paths = app.openapi()["paths"]
    probes = {"/health", "/api/v1/health/live", "/api/v1/health/ready", "/metrics"}
    for path, item in paths.items():
        for method, operation in item.items():
            forbidden = operation["responses"].get("403", {}).get("description", "")
            listed = "country_blocked" in forbidden
            # A file and a rule that refuses: every operation but the probes; no rule: none.
            assert listed == (bool(rule) and path not in probes), f"{method.upper()} {path}"
    # An operation that also checks scopes names both reasons.
    me = paths["/auth/me"]["get"]["responses"]["403"]["description"]
    assert "insufficient_scope" in me
    assert ("country_blocked" in me) == bool(rule)
