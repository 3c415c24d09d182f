"""Attack: prove the password while the account leaves its address, and stay known to it.

A login, or a proof of the current password, held between its password check and its success
while the account is deleted or moves to another email: its success must not make its client
known to the address the account left, which the next account there would inherit. On a
database with real commits (on SQLite writers run one at a time: the tests pass there too).
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from app.auth import action_tokens
from app.auth.models import LoginKnownClient
from app.core.security import PasswordHasher
from app.deps import resources_of
from app.users import service as users_service
from tests.identity import DEFAULT_PASSWORD, unique_email
from tests.security.races import (
    ME,
    NEW_PASSWORD,
    Scene,
    Send,
    live_app,
    new_scene,
    run_held,
)

pytestmark = pytest.mark.anyio

# Held once the password was checked, before the success is counted.
CHECKED = (PasswordHasher, "verify")


@dataclass(frozen=True)
class Proof:
    """A request that proves the account's password, and how it ends after the change."""

    name: str
    send: Send
    status_after: dict[str, int]


@dataclass(frozen=True)
class Leave:
    """A request that takes the account off its address: `start` prepares it, returns it."""

    name: str
    start: Callable[[Scene], Awaitable[Send]]
    status: int


LOGIN = Proof(
    "login",
    lambda s: s.client.post(
        "/api/v1/auth/login", data={"username": s.email, "password": DEFAULT_PASSWORD}
    ),
    {"email-change": 401, "deletion": 401},  # the address no longer opens the account
)
PASSWORD_CHANGE = Proof(
    "password-change",
    lambda s: s.client.post(
        f"{ME}/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        headers=s.owner,
    ),
    {"email-change": 204, "deletion": 401},  # the account, at its new address, is still its
)


async def email_change(scene: Scene) -> Send:
    """Confirm a move to a new address, with the token the mail would carry."""
    async with resources_of(scene.app).session_factory() as session:
        user = await users_service.get_by_email(session=session, email=scene.email)
        assert user is not None
        token = await action_tokens.start_email_change(
            session=session, user=user, new_email=unique_email("moved"), ttl_seconds=3600
        )
        await session.commit()
    return lambda s: s.client.post("/api/v1/auth/email-change/confirm", json={"token": token})


async def deletion(scene: Scene) -> Send:
    """Delete the account: its owner logged in just now, so no password is checked."""
    return lambda s: s.client.delete(ME, headers=s.owner)


EMAIL_CHANGE = Leave("email-change", email_change, 204)
DELETION = Leave("deletion", deletion, 204)
RACES = [(proof, leave) for proof in (LOGIN, PASSWORD_CHANGE) for leave in (EMAIL_CHANGE, DELETION)]


async def known_to(scene: Scene, email: str) -> list[str]:
    """The clients known to `email` (the database store: no Redis here)."""
    statement = select(LoginKnownClient.client).where(LoginKnownClient.email == email)
    async with resources_of(scene.app).session_factory() as session:
        return list(await session.scalars(statement))


@pytest.mark.parametrize(
    ("proof", "leave"), RACES, ids=[f"{proof.name}-vs-{leave.name}" for proof, leave in RACES]
)
async def test_a_proof_in_flight_makes_no_client_known_to_the_address_left(
    live_database_url: str, monkeypatch: pytest.MonkeyPatch, proof: Proof, leave: Leave
) -> None:
    async with live_app(live_database_url) as (app, client):
        scene = await new_scene(app, client)
        assert await known_to(scene, scene.email) != []  # the owner's login made its client known
        send_leave = await leave.start(scene)

        proven, left = await run_held(monkeypatch, scene, CHECKED, proof.send, send_leave)

        assert left.status_code == leave.status, left.text
        assert proven.status_code == proof.status_after[leave.name], proven.text
        assert await known_to(scene, scene.email) == []
