"""The last active superuser cannot be taken away: nobody could administer the service after.

Demoting, deactivating or deleting the only active superuser (themselves, or through another
route) is a 409 `last_superuser`; with a second one it goes ahead; two superusers taking each
other away at the same moment take turns, so one of them stays, also when each proves itself
with its password (a proof that commits before the change).
"""

import asyncio
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx2 import AsyncClient
from sqlalchemy import func, select

from app.deps import resources_of
from app.main import create_app
from app.users.models import User
from tests.harness import assert_problem, client_for, make_settings
from tests.identity import DEFAULT_PASSWORD
from tests.security.races import WAIT_SECONDS, Gate, live_app
from tests.users.helpers import USERS, admin_headers, stored_user

pytestmark = pytest.mark.anyio

PROOF = {"current_password": DEFAULT_PASSWORD}
REMOVALS = {
    "demotion": ("PATCH", "{id}", {"is_superuser": False, **PROOF}),
    "deactivation": ("PATCH", "{id}", {"is_active": False, **PROOF}),
    "deletion": ("DELETE", "{id}", PROOF),
    "own-deletion": ("DELETE", "me", PROOF),
}


async def _me(client: AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    me: dict[str, Any] = (await client.get(f"{USERS}/me", headers=headers)).json()
    return me


@pytest.mark.parametrize(("method", "path", "body"), REMOVALS.values(), ids=list(REMOVALS))
async def test_the_last_superuser_is_kept(
    app: FastAPI, client: AsyncClient, method: str, path: str, body: dict[str, Any]
) -> None:
    admin = await admin_headers(client, app, "only-admin@example.com")
    me = await _me(client, admin)
    target = f"{USERS}/{path.format(id=me['id'])}"
    response = await client.request(method, target, json=body, headers=admin)
    assert_problem(response, 409, "last_superuser")
    stored = await stored_user(app, me["id"])
    assert stored is not None
    assert (stored.is_superuser, stored.is_active) == (True, True)


@pytest.mark.parametrize(("method", "path", "body"), REMOVALS.values(), ids=list(REMOVALS))
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_with_another_superuser_it_goes_ahead(
    app: FastAPI, client: AsyncClient, method: str, path: str, body: dict[str, Any]
) -> None:
    admin = await admin_headers(client, app, "first-admin@example.com")
    await admin_headers(client, app, "second-admin@example.com")
    me = await _me(client, admin)
    target = f"{USERS}/{path.format(id=me['id'])}"
    response = await client.request(method, target, json=body, headers=admin)
    assert response.status_code in (200, 204), response.text


async def test_two_superusers_removing_each_other_at_once_keep_one(
    live_database_url: str,
) -> None:
    app = create_app(make_settings(DATABASE_URL=live_database_url))
    async with LifespanManager(app), client_for(app) as client:
        first = await admin_headers(client, app, "first-admin@example.com")
        second = await admin_headers(client, app, "second-admin@example.com")
        ids = [(await _me(client, headers))["id"] for headers in (first, second)]
        demote = {"is_superuser": False, **PROOF}
        answers = await asyncio.gather(
            client.patch(f"{USERS}/{ids[1]}", json=demote, headers=first),
            client.patch(f"{USERS}/{ids[0]}", json=demote, headers=second),
        )
        statuses = sorted(answer.status_code for answer in answers)
        kept = [await stored_user(app, user_id) for user_id in ids]
    # The second to run finds itself demoted (403) or the other the last one (409).
    assert statuses[0] == 200, [answer.text for answer in answers]
    assert statuses[1] in (403, 409), [answer.text for answer in answers]
    assert sum(1 for user in kept if user is not None and user.is_superuser) == 1


async def test_two_superusers_leaving_at_once_with_their_passwords_keep_one(
    live_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One demotes themself, the other deletes their own account, both with a password: the
    demotion's proof commits (its throttle count) between its request's start and its change,
    so the count of superusers it relies on is made after the proof, not before."""
    async with live_app(live_database_url) as (app, client):
        first = await admin_headers(client, app, "first-admin@example.com")
        second = await admin_headers(client, app, "second-admin@example.com")
        first_id = (await _me(client, first))["id"]
        gate = Gate()
        gate.install(monkeypatch, resources_of(app).password_hasher, "verify")
        gate.armed = True
        demote = {"is_superuser": False, **PROOF}
        demotion = asyncio.create_task(
            client.patch(f"{USERS}/{first_id}", json=demote, headers=first)
        )
        await asyncio.wait_for(gate.reached.wait(), WAIT_SECONDS)  # proven: two superusers
        deletion = await client.request("DELETE", f"{USERS}/me", json=PROOF, headers=second)
        gate.opened.set()
        demoted = await demotion
        async with resources_of(app).session_factory() as session:
            left = await session.scalar(
                select(func.count()).select_from(User).where(User.is_superuser, User.is_active)
            )
    assert deletion.status_code == 204, deletion.text
    assert_problem(demoted, 409, "last_superuser")
    assert left == 1
