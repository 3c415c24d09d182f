"""Attack: issue a credential while its owner revokes everything. The revocation always wins.

A refresh, a login or a key creation in flight, held open between its write and its commit
while a revocation runs, ends revoked; one that comes while a revocation is held open is
refused. Every revoking flow is raced, on a database with real commits. (On SQLite writers
run one at a time, so the race cannot happen there; the tests pass all the same.)
"""

from dataclasses import dataclass
from datetime import timedelta

import pytest

from app.api_keys import service as api_keys_service
from app.auth import service as auth_service
from app.users import service as users_service
from tests.harness import assert_problem
from tests.identity import DEFAULT_PASSWORD
from tests.security.races import (
    DEACTIVATION,
    KEY_REVOCATION,
    KEYS,
    LOGOUT,
    LOGOUT_ALL,
    ME,
    PASSWORD_CHANGE,
    PASSWORD_RESET,
    REFRESH,
    Revocation,
    Scene,
    Send,
    Step,
    intruder_key,
    intruder_session,
    live_app,
    new_scene,
    nothing,
    run_held,
    still_working,
)

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Issue:
    """A request that issues the intruder a credential, and the call to hold it at."""

    name: str
    prepare: Step
    send: Send
    held_at: tuple[object, str]
    status: int


ISSUED_TOKENS = (auth_service, "issue_tokens")

REFRESH_ISSUE = Issue(
    "refresh",
    intruder_session,
    lambda s: s.client.post(REFRESH, json={"refresh_token": s.refresh_token}),
    ISSUED_TOKENS,
    200,
)
LOGIN = Issue(
    "login",
    nothing,
    lambda s: s.client.post(
        "/api/v1/auth/login", data={"username": s.email, "password": DEFAULT_PASSWORD}
    ),
    ISSUED_TOKENS,
    200,
)
SESSION_KEY = Issue(
    "key-from-session",
    intruder_session,
    lambda s: s.client.post(KEYS, json={"name": "mine now"}, headers=s.intruder),
    (api_keys_service, "create"),
    201,
)
CHILD_KEY = Issue(
    "key-from-key",
    intruder_key,
    lambda s: s.client.post(KEYS, json={"name": "mine now"}, headers=s.intruder),
    (api_keys_service, "create"),
    201,
)

REUSE = Revocation(
    "refresh-token-reuse",
    lambda s: s.client.post(REFRESH, json={"refresh_token": s.retired}),
    401,
    None,  # it commits the revocation itself, before answering
)

RACES = [
    *[
        (REFRESH_ISSUE, revocation)
        for revocation in (LOGOUT, LOGOUT_ALL, PASSWORD_CHANGE, PASSWORD_RESET, DEACTIVATION, REUSE)
    ],
    *[(LOGIN, revocation) for revocation in (PASSWORD_CHANGE, PASSWORD_RESET, DEACTIVATION)],
    (SESSION_KEY, PASSWORD_RESET),
    (CHILD_KEY, KEY_REVOCATION),
    (CHILD_KEY, PASSWORD_RESET),
]


def race_id(race: tuple[Issue, Revocation]) -> str:
    return f"{race[0].name}-vs-{race[1].name}"


async def staged(scene: Scene, issue: Issue, revocation: Revocation) -> Scene:
    await issue.prepare(scene)
    await revocation.prepare(scene)
    return scene


@pytest.mark.parametrize(("issue", "revocation"), RACES, ids=map(race_id, RACES))
async def test_a_revocation_ends_what_a_request_in_flight_issues(
    live_database_url: str, monkeypatch: pytest.MonkeyPatch, issue: Issue, revocation: Revocation
) -> None:
    async with live_app(live_database_url) as (app, client):
        scene = await staged(await new_scene(app, client), issue, revocation)

        issued, revoked = await run_held(
            monkeypatch, scene, issue.held_at, issue.send, revocation.send
        )

        assert issued.status_code == issue.status, issued.text
        assert revoked.status_code == revocation.status, revoked.text
        await revocation.after(scene)
        assert await still_working(scene, issued) == []


HELD_REVOCATIONS = [race for race in RACES if race[1].held_at is not None]


@pytest.mark.parametrize(
    ("issue", "revocation"), HELD_REVOCATIONS, ids=map(race_id, HELD_REVOCATIONS)
)
async def test_a_request_that_comes_during_a_revocation_is_refused(
    live_database_url: str, monkeypatch: pytest.MonkeyPatch, issue: Issue, revocation: Revocation
) -> None:
    assert revocation.held_at is not None
    async with live_app(live_database_url) as (app, client):
        scene = await staged(await new_scene(app, client), issue, revocation)

        revoked, issued = await run_held(
            monkeypatch, scene, revocation.held_at, revocation.send, issue.send
        )

        assert revoked.status_code == revocation.status, revoked.text
        assert issued.status_code == 401, issued.text
        await revocation.after(scene)
        assert await still_working(scene, issued) == []


@pytest.mark.parametrize("use", ["first-use", "reused"])
async def test_a_key_used_while_its_account_is_deleted_is_refused(
    live_database_url: str, monkeypatch: pytest.MonkeyPatch, use: str
) -> None:
    """A key's use writes `last_used_at` under its owner's lock: what committed while it waited
    (the account and its keys deleted) decides, a 401 like any key gone, not a 409 conflict."""
    async with live_app(live_database_url) as (app, client):
        scene = await new_scene(app, client)
        body = {"name": "ci", "current_password": DEFAULT_PASSWORD}
        created = await client.post(KEYS, json=body, headers=scene.owner)
        assert created.status_code == 201, created.text
        key = {"X-API-Key": created.json()["key"]}
        if use == "reused":  # used long enough ago that this use writes again
            assert (await client.get(ME, headers=key)).status_code == 200
            monkeypatch.setattr(api_keys_service, "LAST_USED_RESOLUTION", timedelta(0))
        proof = {"current_password": DEFAULT_PASSWORD}

        deleted, used = await run_held(
            monkeypatch,
            scene,
            (users_service, "delete"),
            lambda s: s.client.request("DELETE", ME, json=proof, headers=s.owner),
            lambda s: s.client.get(ME, headers=key),
        )

    assert deleted.status_code == 204, deleted.text
    assert_problem(used, 401, "invalid_token")
