"""LOGIN_MAX_DELAY_SECONDS caps the account's delay; LOGIN_KNOWN_CLIENT_DAYS says for how long
a client that logged in skips it. Strangers' failures are written straight to the table, as
if they had guessed as soon as each delay ended, so no test waits them out."""

from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import update

from app.auth.models import LoginFailure, LoginKnownClient
from app.core.config import Settings
from app.db.base import utcnow
from tests.harness import factory, started
from tests.identity import DEFAULT_PASSWORD, register
from tests.security.test_login_lockout import NEWCOMER, OWNER, attempt, from_address

pytestmark = pytest.mark.anyio

EMAIL = "owner@example.com"


async def strangers_failed(app: FastAPI, count: int) -> None:
    """`count` failures for the account just now, each from another address."""
    async with factory(app)() as session:
        now = utcnow()
        session.add_all(
            LoginFailure(email=EMAIL, client=f"stranger-{n}", created_at=now) for n in range(count)
        )
        await session.commit()


@pytest.mark.parametrize(
    ("overrides", "wait"), [({}, 30), ({"LOGIN_MAX_DELAY_SECONDS": 3}, 3)], ids=["default", "3"]
)
async def test_the_accounts_delay_is_at_most_login_max_delay_seconds(
    settings: Settings, overrides: dict[str, Any], wait: int
) -> None:
    async with started(settings, **overrides) as (app, client):
        await register(client, EMAIL)
        await strangers_failed(app, 20)  # 2^15 seconds, uncapped
        async with from_address(app, NEWCOMER) as newcomer:
            refused = await attempt(newcomer, EMAIL, DEFAULT_PASSWORD)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) == wait


@pytest.mark.parametrize(("days", "status"), [(3, 200), (1, 429)], ids=["known", "forgotten"])
async def test_a_client_that_logged_in_skips_the_delay_for_login_known_client_days(
    settings: Settings, days: int, status: int
) -> None:
    async with started(settings, LOGIN_KNOWN_CLIENT_DAYS=days) as (app, client):
        await register(client, EMAIL)
        async with from_address(app, OWNER) as owner:
            assert (await attempt(owner, EMAIL, DEFAULT_PASSWORD)).status_code == 200
            async with factory(app)() as session:
                await session.execute(
                    update(LoginKnownClient).values(last_login_at=utcnow() - timedelta(days=2))
                )
                await session.commit()
            await strangers_failed(app, 20)
            answer = await attempt(owner, EMAIL, DEFAULT_PASSWORD)
    assert answer.status_code == status, answer.text
