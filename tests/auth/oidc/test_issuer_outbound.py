"""OIDC mode through the real app: the JWKS is fetched by the app's resilient HTTP client.

Its request carries the caller's request id, and the issuer's host has a circuit breaker:
once open, a request that needs keys answers 503 `upstream_unavailable` with the breaker's
`Retry-After`, without calling the issuer.
"""

import pytest

from app.main import create_app
from tests.auth.oidc.helpers import KEYS_UNAVAILABLE, ME, oidc_settings, user_count
from tests.harness import assert_problem, client_for, running
from tests.identity import bearer
from tests.jwks import JwksServer

pytestmark = pytest.mark.anyio


async def test_the_jwks_fetch_carries_the_request_id(
    database_url: str, jwks: JwksServer, token: str
) -> None:
    app = create_app(oidc_settings(database_url, jwks.url))
    async with running(app), client_for(app) as client:
        response = await client.get(ME, headers={**bearer(token), "X-Request-ID": "req-oidc-1"})
    assert response.status_code == 200
    assert jwks.request_ids == ["req-oidc-1"]


async def test_an_open_breaker_answers_503_with_its_retry_after(
    database_url: str, jwks: JwksServer, token: str
) -> None:
    jwks.status = 503
    settings = oidc_settings(
        database_url,
        jwks.url,
        HTTP_RETRIES=2,
        CIRCUIT_BREAKER_FAILURE_THRESHOLD=1,
        CIRCUIT_BREAKER_RESET_SECONDS=45,
    )
    app = create_app(settings)
    async with running(app), client_for(app) as client:
        response = await client.get(ME, headers=bearer(token))
        body = assert_problem(response, 503, "upstream_unavailable")
        assert body["detail"] == KEYS_UNAVAILABLE
        # The first 503 opened the breaker: the retries were refused without a call.
        assert jwks.requests == 1
        assert 40 <= int(response.headers["Retry-After"]) <= 45
        assert await user_count(app) == 0


async def test_an_unavailable_issuer_is_retried_before_giving_up(
    database_url: str, jwks: JwksServer, token: str
) -> None:
    jwks.status = 503
    app = create_app(oidc_settings(database_url, jwks.url, HTTP_RETRIES=2))
    async with running(app), client_for(app) as client:
        response = await client.get(ME, headers=bearer(token))
    assert_problem(response, 503, "upstream_unavailable")
    assert response.headers["Retry-After"] == "1"
    assert jwks.requests == 3
