"""OIDC mode through the real app: the verifier the lifespan builds, and the issuer's keys.

The JWKS cache, key rotation, issuer outages and timeouts, and a fetch that must not block
the event loop. Fetched by the app's own async HTTP client from a JWKS on loopback.
"""

import time

import anyio
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from httpx2 import AsyncClient, Response

from app.deps import resources_of
from app.infra.oidc import OidcVerifier
from app.main import create_app
from tests.auth.oidc.helpers import (
    KEYS_UNAVAILABLE,
    ME,
    NEW_KID,
    assert_invalid_token,
    me,
    oidc_settings,
    use_fake_clock,
    user_count,
)
from tests.harness import assert_problem, client_for, make_settings, running
from tests.identity import JWT_SECRET, bearer
from tests.jwks import (
    AUDIENCE,
    CACHE_SECONDS,
    ISSUER,
    KID,
    MIN_REFETCH,
    JwksServer,
    public_jwk,
    sign,
)

pytestmark = pytest.mark.anyio


# --- wiring ----------------------------------------------------------------------------------


async def test_lifespan_builds_the_verifier_from_settings(app: FastAPI, jwks: JwksServer) -> None:
    verifier = resources_of(app).oidc_verifier
    assert isinstance(verifier, OidcVerifier)
    assert (verifier.issuer, verifier.audience, verifier.jwks_url) == (ISSUER, AUDIENCE, jwks.url)
    assert jwks.requests == 0  # keys are fetched on first use, not at start-up


async def test_local_mode_has_no_verifier(database_url: str) -> None:
    app = create_app(make_settings(DATABASE_URL=database_url, JWT_SECRET=JWT_SECRET))
    async with running(app):
        assert resources_of(app).oidc_verifier is None


# --- the JWKS: cache, rotation, outages, and the event loop ------------------------------------


async def test_unknown_kids_do_not_make_the_app_hammer_the_issuer(
    app: FastAPI, client: AsyncClient, jwks: JwksServer, rsa_key: rsa.RSAPrivateKey, token: str
) -> None:
    await me(client, token)
    for n in range(5):
        response = await client.get(ME, headers=bearer(sign(rsa_key, f"random-{n}")))
        assert_invalid_token(response)
    assert jwks.requests == 1  # inside the refetch interval: no fetch per unknown kid


async def test_key_rotation_is_accepted_after_one_refetch(
    app: FastAPI,
    client: AsyncClient,
    jwks: JwksServer,
    rsa_key: rsa.RSAPrivateKey,
    new_rsa_key: rsa.RSAPrivateKey,
) -> None:
    clock = use_fake_clock(app, jwks)
    before = await me(client, sign(rsa_key, KID))
    assert jwks.requests == 1

    # The issuer switches to a new key under a new kid; our cache is still fresh.
    jwks.publish(public_jwk(new_rsa_key, NEW_KID, alg="RS256", use="sig"))
    clock.advance(MIN_REFETCH + 1)
    after = await me(client, sign(new_rsa_key, NEW_KID))

    assert after["id"] == before["id"]  # same subject, same user, whatever key signed
    assert jwks.requests == 2  # exactly one refetch
    assert await me(client, sign(new_rsa_key, NEW_KID)) == after
    assert jwks.requests == 2
    # The retired key is gone from the refetched set.
    assert_invalid_token(await client.get(ME, headers=bearer(sign(rsa_key, KID))))
    assert jwks.requests == 2


async def test_keys_are_refetched_when_the_cache_expires(
    app: FastAPI, client: AsyncClient, jwks: JwksServer, token: str
) -> None:
    clock = use_fake_clock(app, jwks)
    await me(client, token)
    clock.advance(CACHE_SECONDS - 1)
    await me(client, token)
    assert jwks.requests == 1
    clock.advance(1)
    await me(client, token)
    assert jwks.requests == 2


async def test_cached_keys_survive_an_issuer_outage(
    app: FastAPI, client: AsyncClient, jwks: JwksServer, token: str
) -> None:
    clock = use_fake_clock(app, jwks)
    created = await me(client, token)
    jwks.status = 500
    clock.advance(CACHE_SECONDS + 1)

    assert (await me(client, token))["id"] == created["id"]
    assert jwks.requests == 2


@pytest.mark.parametrize("failure", ["http-500", "not-json", "not-a-jwks"])
async def test_issuer_failing_before_any_key_was_cached_is_502(
    app: FastAPI, client: AsyncClient, jwks: JwksServer, token: str, failure: str
) -> None:
    if failure == "http-500":
        jwks.status = 500
    else:
        jwks.raw_body = b"{not json" if failure == "not-json" else b'{"keys": "none"}'

    response = await client.get(ME, headers=bearer(token))

    body = assert_problem(response, 502, "external_service_error")
    assert body["title"] == "Bad Gateway"
    assert body["detail"] == KEYS_UNAVAILABLE
    assert "www-authenticate" not in response.headers  # the token is not to blame
    assert jwks.requests == 1
    assert await user_count(app) == 0


async def test_unreachable_issuer_is_503(database_url: str, token: str) -> None:
    closed = JwksServer()  # bind a port, then free it, so nothing listens there
    url = closed.url
    closed.server_close()
    app = create_app(oidc_settings(database_url, url))
    async with running(app), client_for(app) as client:
        response = await client.get(ME, headers=bearer(token))
        assert_problem(response, 503, "upstream_unavailable")
        assert await user_count(app) == 0


async def test_hanging_issuer_is_504_after_oidc_http_timeout(
    database_url: str, jwks: JwksServer, token: str
) -> None:
    jwks.delay = 10.0
    app = create_app(oidc_settings(database_url, jwks.url, OIDC_HTTP_TIMEOUT=0.3))
    async with running(app), client_for(app) as client:
        started = time.monotonic()
        response = await client.get(ME, headers=bearer(token))
        elapsed = time.monotonic() - started

    assert_problem(response, 504, "upstream_timeout")
    assert elapsed < 3.0
    assert jwks.requests == 1


async def test_fetching_the_keys_does_not_block_the_event_loop(
    app: FastAPI, client: AsyncClient, jwks: JwksServer, token: str
) -> None:
    jwks.delay = 0.5
    finished: list[str] = []
    responses: dict[str, Response] = {}

    async def call(name: str, path: str, headers: dict[str, str]) -> None:
        responses[name] = await client.get(path, headers=headers)
        finished.append(name)

    async with anyio.create_task_group() as group:
        group.start_soon(call, "me", ME, bearer(token))
        # Wait (in a thread) until the issuer holds the app's fetch open.
        assert await anyio.to_thread.run_sync(jwks.received.wait, 5.0)
        await call("health", "/health", {})

    assert finished == ["health", "me"]
    assert responses["health"].status_code == 200
    assert responses["me"].status_code == 200, responses["me"].text
    assert responses["me"].json()["email"] == "ada@example.com"


async def test_the_document_lists_the_issuers_failures_where_a_token_is_checked(
    app: FastAPI,
) -> None:
    """The 502 and 504 above can answer every operation that authenticates, and only those."""
    for path, item in app.openapi()["paths"].items():
        for method, operation in item.items():
            listed = {"502", "504"} & operation["responses"].keys()
            assert listed == ({"502", "504"} if "security" in operation else set()), (method, path)
    local = create_app(make_settings())
    for item in local.openapi()["paths"].values():
        assert all("502" not in operation["responses"] for operation in item.values())
