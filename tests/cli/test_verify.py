"""`app verify`: passes against the real app, names what fails against broken ones."""

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx2 import ASGITransport, AsyncClient
from starlette.applications import Starlette

from app.cli.verify import run_checks
from app.cli.verify_checks import Verifier
from app.main import create_app
from tests.cli import broken_app
from tests.cli.conftest import Run, one_line_error
from tests.harness import make_settings, running
from tests.identity import JWT_SECRET

pytestmark = pytest.mark.anyio

ALL_CHECKS = {
    "health.live",
    "health.ready",
    "request_id.echo",
    "errors.not_found",
    "errors.validation",
    "security_headers",
    "rate_limit.headers",
    "account.register",
    "account.login",
    "account.me",
    "account.refresh",
    "account.logout",
    "account.delete",
}


@pytest.fixture
async def limited_app(database_url: str) -> AsyncIterator[FastAPI]:
    """The real app with rate limiting on, small quotas so 429 comes soon."""
    settings = make_settings(
        DATABASE_URL=database_url,
        JWT_SECRET=JWT_SECRET,
        RATE_LIMIT_ENABLED=True,
        RATE_LIMIT_PER_MINUTE=20,
        RATE_LIMIT_BURST=0,
    )
    async with running(create_app(settings)) as app:
        yield app


async def verify(app: FastAPI | Starlette, **options: object) -> Verifier:
    transport = ASGITransport(app=app)
    async with AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await run_checks(client, **options)  # type: ignore[arg-type]


def outcomes(verifier: Verifier) -> dict[str, str]:
    return {result.name: result.outcome for result in verifier.results}


async def test_the_real_app_passes_every_check(limited_app: FastAPI) -> None:
    verifier = await verify(limited_app, expect_rate_limit=True, max_requests=100)
    assert verifier.failed == [], verifier.results
    assert outcomes(verifier) == dict.fromkeys(ALL_CHECKS | {"rate_limit.enforced"}, "pass")
    enforced = next(r for r in verifier.results if r.name == "rate_limit.enforced")
    assert "429 after" in enforced.detail


async def test_the_throwaway_account_is_deleted_with_its_password(database_url: str) -> None:
    # FRESH_LOGIN_SECONDS=0: no login is recent enough; the password proves the deletion.
    settings = make_settings(
        DATABASE_URL=database_url, JWT_SECRET=JWT_SECRET, FRESH_LOGIN_SECONDS=0
    )
    async with running(create_app(settings)) as app:
        verifier = await verify(app)
    assert outcomes(verifier)["account.delete"] == "pass", verifier.results


async def test_the_throwaway_account_is_deleted(limited_app: FastAPI) -> None:
    verifier = await verify(limited_app)
    deleted = next(r for r in verifier.results if r.name == "account.delete")
    email = deleted.detail.split()[0]
    transport = ASGITransport(app=limited_app)
    async with AsyncClient(transport=transport, base_url="http://testserver") as client:
        login = await client.post(
            "/api/v1/auth/login", data={"username": email, "password": "anything at all"}
        )
    assert login.status_code == 401


async def test_the_round_trip_spends_exactly_eight_of_the_auth_quota(database_url: str) -> None:
    # docs/cli.md: 8 requests of RATE_LIMIT_AUTH_PER_MINUTE (the account's removal, which takes
    # its password, is one), so 8 suffice and leave none.
    settings = make_settings(
        DATABASE_URL=database_url,
        JWT_SECRET=JWT_SECRET,
        RATE_LIMIT_ENABLED=True,
        RATE_LIMIT_AUTH_PER_MINUTE=8,
    )
    async with running(create_app(settings)) as app:
        verifier = await verify(app)
        transport = ASGITransport(app=app)
        async with AsyncClient(transport=transport, base_url="http://testserver") as client:
            after = await client.post("/api/v1/auth/refresh", json={"refresh_token": "spent"})
    assert verifier.failed == [], verifier.results
    assert after.status_code == 429
    assert after.headers["ratelimit"].startswith('"auth";r=0;')


async def test_a_missing_rate_limit_fails_only_when_expected(database_url: str) -> None:
    settings = make_settings(DATABASE_URL=database_url, JWT_SECRET=JWT_SECRET)
    async with running(create_app(settings)) as app:
        verifier = await verify(app, expect_rate_limit=True, max_requests=30)
    assert verifier.failed == ["rate_limit.headers", "rate_limit.enforced"]
    enforced = next(r for r in verifier.results if r.name == "rate_limit.enforced")
    assert enforced.detail == "no 429 after 30 requests to /api/v1/meta"


async def test_a_broken_service_fails_with_each_check_named() -> None:
    verifier = await verify(broken_app.app)
    result = outcomes(verifier)
    assert result["health.live"] == "pass"
    failed = set(verifier.failed)
    assert {"health.ready", "request_id.echo", "errors.not_found"} <= failed
    assert {"errors.validation", "security_headers", "rate_limit.headers"} <= failed
    assert result["account.register"] == "fail"
    assert result["account.login"] == "skip"
    assert result["account.delete"] == "skip"
    details = {r.name: r.detail for r in verifier.results}
    assert "text/plain" in details["errors.not_found"]
    assert "x-content-type-options" in details["security_headers"]
    assert "answered 500" in details["account.register"]


async def test_an_unreachable_service_fails_every_check() -> None:
    async with AsyncClient(base_url="http://127.0.0.1:9", timeout=2) as client:
        verifier = await run_checks(client)
    assert set(verifier.failed) == ALL_CHECKS - {"account.login", "account.me"} - {
        "account.refresh",
        "account.logout",
        "account.delete",
    }
    assert all("ConnectError" in r.detail for r in verifier.results if r.outcome == "fail")


def test_the_command_refuses_a_bad_url(run_cli: Run) -> None:
    assert "http(s) URL" in one_line_error(run_cli("verify", "ftp://example.com"))
    assert run_cli("verify", "not a url").code == 2


def test_the_command_prints_a_table_and_fails(run_cli: Run) -> None:
    outcome = run_cli("verify", "http://127.0.0.1:9", "--timeout", "1")
    assert outcome.code == 1
    assert "health.live" in outcome.out
    assert "FAIL" in outcome.out
    line = one_line_error(outcome)
    assert "checks failed: health.live, health.ready" in line
