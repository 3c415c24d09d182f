"""Attack: rotate stolen refresh tokens in a loop while the owner revokes. No session survives.

The end-to-end form of the race in test_revocation_races.py, as it was found: the intruder
holds several sessions of the account and exchanges each one's newest refresh token as fast
as it can, while the owner ends them once. Nothing is held open by the test; the requests
overlap as they happen to, over many trials, against real commits.
"""

import asyncio
import random
from typing import Any

import pytest

from tests.identity import login
from tests.security.races import (
    DEACTIVATION,
    LOGOUT,
    LOGOUT_ALL,
    PASSWORD_CHANGE,
    PASSWORD_RESET,
    REFRESH,
    Revocation,
    Scene,
    live_app,
    new_scene,
    pair_works,
)

pytestmark = pytest.mark.anyio

TRIALS = 6
SESSIONS = 4
# The revocation comes while the rotations are under way, at a moment that varies.
LEAD_SECONDS = (0.01, 0.05)
# Rotations go on a little after the revocation answered: a survivor would keep rotating.
TAIL_SECONDS = 0.05


async def rotate_until_refused(scene: Scene, pair: dict[str, Any], stop: asyncio.Event) -> Any:
    """Exchange the session's newest refresh token again and again; return the newest pair."""
    while not stop.is_set():
        response = await scene.client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
        assert response.status_code in (200, 401), response.text
        if response.status_code == 401:
            break
        pair = response.json()
    return pair


async def trial(scene: Scene, revocation: Revocation) -> list[str]:
    """One storm against one revocation; what still works of the sessions it should end."""
    await revocation.prepare(scene)
    pairs = [await login(scene.client, scene.email) for _ in range(SESSIONS)]
    scene.refresh_token = pairs[0]["refresh_token"]  # the session a logout ends
    stop = asyncio.Event()
    rotating = [asyncio.create_task(rotate_until_refused(scene, pair, stop)) for pair in pairs]
    await asyncio.sleep(random.uniform(*LEAD_SECONDS))  # noqa: S311  # nosec B311
    revoked = await revocation.send(scene)
    assert revoked.status_code == revocation.status, revoked.text
    await asyncio.sleep(TAIL_SECONDS)
    stop.set()
    newest = await asyncio.gather(*rotating)
    await revocation.after(scene)
    ended = newest[:1] if revocation is LOGOUT else newest
    return [
        f"session {index}: {token}"
        for index, pair in enumerate(ended)
        for token in await pair_works(scene.client, pair)
    ]


@pytest.mark.parametrize(
    "revocation",
    [LOGOUT, LOGOUT_ALL, PASSWORD_CHANGE, PASSWORD_RESET, DEACTIVATION],
    ids=lambda revocation: revocation.name,
)
async def test_no_session_survives_its_revocation_during_a_rotation_storm(
    live_database_url: str, revocation: Revocation
) -> None:
    survivors = []
    async with live_app(live_database_url) as (app, client):
        for number in range(TRIALS):
            scene = await new_scene(app, client)
            survivors += [f"trial {number}, {found}" for found in await trial(scene, revocation)]
    assert survivors == []
