"""Attack: guess credentials at full speed, or dodge the limiter. Credential routes are limited."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from httpx2 import AsyncClient

from app.core.config import Settings
from app.main import create_app
from tests.harness import assert_problem, client_for, make_settings, running
from tests.identity import DEFAULT_PASSWORD, bearer, login, register

pytestmark = pytest.mark.anyio

ME = "/api/v1/users/me"


@asynccontextmanager
async def limited(settings: Settings, **overrides: Any) -> AsyncIterator[AsyncClient]:
    values = {"DATABASE_URL": settings.database.url, "RATE_LIMIT_ENABLED": True, **overrides}
    app = create_app(make_settings(**values))
    async with running(app), client_for(app) as client:
        yield client


async def test_registration_and_reset_requests_spend_the_auth_quota(settings: Settings) -> None:
    async with limited(settings, RATE_LIMIT_AUTH_PER_MINUTE=3) as client:
        await register(client, "quota-1@example.com")
        await register(client, "quota-2@example.com")
        reset = await client.post("/api/v1/auth/password-reset", json={"email": "x@example.com"})
        assert reset.status_code == 202
        refused = await client.post(
            "/api/v1/auth/login", data={"username": "quota-1@example.com", "password": "guess"}
        )
    assert_problem(refused, 429, "rate_limited")
    assert refused.headers["ratelimit-policy"].startswith('"auth"')


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/auth/refresh", {"refresh_token": "guess"}),
        ("/api/v1/auth/password-reset/confirm", {"token": "guess", "new_password": "x" * 12}),
        ("/api/v1/auth/verify-email", {"token": "guess"}),
        ("/api/v1/auth/email-change/confirm", {"token": "guess"}),
        ("/api/v1/auth/logout", {"refresh_token": "guess"}),
    ],
)
async def test_token_guessing_routes_have_the_auth_quota(
    settings: Settings, path: str, body: dict[str, str]
) -> None:
    async with limited(settings, RATE_LIMIT_AUTH_PER_MINUTE=2) as client:
        statuses = [(await client.post(path, json=body)).status_code for _ in range(3)]
    assert statuses[-1] == 429
    assert 429 not in statuses[:2]


async def test_legacy_routes_are_limited_too(settings: Settings) -> None:
    async with limited(settings, RATE_LIMIT_PER_MINUTE=2, RATE_LIMIT_BURST=0) as client:
        statuses = [(await client.get("/auth/me")).status_code for _ in range(3)]
        login_answer = await client.post(
            "/auth/login", data={"username": "a@b.co", "password": "x"}
        )
    assert statuses == [401, 401, 429]
    assert login_answer.headers["ratelimit-policy"].startswith('"auth"')


async def test_every_response_carrying_a_token_is_never_stored(settings: Settings) -> None:
    async with limited(settings, RATE_LIMIT_ENABLED=False) as client:
        await register(client, "nostore@example.com")
        form = {"username": "nostore@example.com", "password": DEFAULT_PASSWORD}
        answers = [
            await client.post("/api/v1/auth/login", data=form),
            await client.post("/auth/login", data=form),
        ]
        tokens = answers[0].json()
        answers.append(
            await client.post(
                "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
            )
        )
        answers.append(
            await client.post(
                "/api/v1/api-keys",
                json={"name": "k", "current_password": DEFAULT_PASSWORD},
                headers=bearer(answers[-1].json()),
            )
        )
    for answer in answers:
        assert answer.status_code in (200, 201), answer.text
        assert answer.headers["cache-control"] == "no-store"


async def test_a_second_authorization_header_is_refused_before_any_quota(
    settings: Settings,
) -> None:
    async with limited(settings, RATE_LIMIT_PER_MINUTE=2, RATE_LIMIT_BURST=0) as client:
        await register(client, "victim@example.com")
        await register(client, "other@example.com")
        victim = bearer(await login(client, "victim@example.com"))["Authorization"]
        other = bearer(await login(client, "other@example.com"))["Authorization"]
        for _ in range(2):
            assert (await client.get(ME, headers={"Authorization": victim})).status_code == 200
        # Which of two tokens acts would depend on who reads the headers: neither does.
        doubled = await client.get(
            ME, headers=[("Authorization", other), ("Authorization", victim)]
        )
        assert_problem(doubled, 422, "validation_error")
        # The other caller's quota is untouched by the refused request.
        assert (await client.get(ME, headers={"Authorization": other})).status_code == 200


async def test_an_empty_api_key_header_does_not_switch_quotas(settings: Settings) -> None:
    async with limited(settings, RATE_LIMIT_PER_MINUTE=2, RATE_LIMIT_BURST=0) as client:
        await register(client, "keyless@example.com")
        token = bearer(await login(client, "keyless@example.com"))["Authorization"]
        for _ in range(2):
            assert (await client.get(ME, headers={"Authorization": token})).status_code == 200
        # An empty X-API-Key is no key for the route, which then takes the bearer token.
        dodged = await client.get(ME, headers=[("X-API-Key", ""), ("Authorization", token)])
    assert_problem(dodged, 429, "rate_limited")
