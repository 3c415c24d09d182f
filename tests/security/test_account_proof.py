"""Attack: destroy or escalate an account with a leaked API key or a stolen, stale session.

A review deleted an account with a key holding only `users:write` (which a key created without
scopes holds too), and promoted accounts with a superuser's key. Every action that destroys an
account or changes who may use it now needs what an email change needs: a session, never an
API key, and the current password or a login of the last FRESH_LOGIN_SECONDS.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient, Response

from app.core.security import create_access_token
from app.deps import resources_of
from app.main import create_app
from app.users.models import User
from tests.auth.helpers import set_user
from tests.harness import assert_problem, factory, make_settings
from tests.identity import DEFAULT_PASSWORD, bearer, login, register
from tests.security.helpers import ME, create_key, make_superuser, me_status

pytestmark = pytest.mark.anyio

USERS = "/api/v1/users"
LOGOUT_ALL = "/api/v1/auth/logout-all"
CALLER = "caller@example.com"
TARGET = "target@example.com"
EVERY_SCOPE = ["users:read", "users:write", "api-keys:read", "api-keys:write"]
# The review's key (only `users:write`), a key created without scopes (the creator's), and one
# with every scope: none of them may do what follows, whatever it sends.
KEY_SCOPES = [["users:write"], None, EVERY_SCOPE]
KEY_IDS = ["users-write-only", "default-scopes", "every-scope"]


@dataclass(frozen=True)
class Scene:
    """A caller (a superuser for the admin actions), its fresh login, and another account."""

    app: FastAPI
    client: AsyncClient
    caller_id: str
    tokens: dict[str, Any]
    target_id: str


@dataclass(frozen=True)
class Action:
    """A request that destroys or escalates an account, and how to tell it happened."""

    name: str
    method: str
    own: bool  # on the caller's own account (`/users/me`), else a superuser's on the target
    body: dict[str, Any]
    happened: Callable[[User | None], bool]
    before: dict[str, Any] | None = None  # the target's state first (demote a superuser...)

    def path(self, scene: Scene) -> str:
        return ME if self.own else f"{USERS}/{scene.target_id}"

    def subject(self, scene: Scene) -> str:
        return scene.caller_id if self.own else scene.target_id


def gone(user: User | None) -> bool:
    return user is None


def now_has(**values: bool) -> Callable[[User | None], bool]:
    return lambda user: (
        user is not None and all(getattr(user, field) == value for field, value in values.items())
    )


ACTIONS = [
    Action("delete-own-account", "DELETE", True, {}, gone),
    Action("delete-an-account", "DELETE", False, {}, gone),
    Action("promote", "PATCH", False, {"is_superuser": True}, now_has(is_superuser=True)),
    Action(
        "demote",
        "PATCH",
        False,
        {"is_superuser": False},
        now_has(is_superuser=False),
        before={"is_superuser": True},
    ),
    Action("deactivate", "PATCH", False, {"is_active": False}, now_has(is_active=False)),
    Action(
        "reactivate",
        "PATCH",
        False,
        {"is_active": True},
        now_has(is_active=True),
        before={"is_active": False},
    ),
]
ACTION_IDS = [action.name for action in ACTIONS]


async def stored(app: FastAPI, user_id: str) -> User | None:
    async with factory(app)() as session:
        return await session.get(User, uuid.UUID(user_id))


async def scene_for(app: FastAPI, client: AsyncClient, action: Action) -> Scene:
    caller = await register(client, CALLER)
    target = await register(client, TARGET)
    if not action.own:
        await make_superuser(app, CALLER)
    if action.before:
        await set_user(app, TARGET, **action.before)
    return Scene(app, client, caller["id"], await login(client, CALLER), target["id"])


def stale(app: FastAPI, tokens: dict[str, Any]) -> dict[str, str]:
    """The same live session, signed as if its login were an hour old (refreshes keep it)."""
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    now = datetime.now(UTC)
    token = create_access_token(
        subject=uuid.UUID(claims["sub"]),
        session_id=uuid.UUID(claims["sid"]),
        auth=resources_of(app).settings.auth,
        now=now,
        authenticated_at=now - timedelta(hours=1),
    )
    return bearer(token.token)


async def act(scene: Scene, action: Action, headers: dict[str, str], **proof: str) -> Response:
    body = {**action.body, **proof}
    return await scene.client.request(
        action.method, action.path(scene), json=body or None, headers=headers
    )


async def happened(scene: Scene, action: Action) -> bool:
    return action.happened(await stored(scene.app, action.subject(scene)))


@pytest.mark.parametrize("scopes", KEY_SCOPES, ids=KEY_IDS)
@pytest.mark.parametrize("action", ACTIONS, ids=ACTION_IDS)
async def test_an_api_key_can_never_do_it(
    app: FastAPI, client: AsyncClient, action: Action, scopes: list[str] | None
) -> None:
    scene = await scene_for(app, client, action)
    created = await create_key(
        client, bearer(scene.tokens), scopes=scopes, current_password=DEFAULT_PASSWORD
    )
    assert created.status_code == 201, created.text
    key = {"X-API-Key": created.json()["key"]}

    # Not even with the account's password beside it: a key never proves a person.
    response = await act(scene, action, key, current_password=DEFAULT_PASSWORD)

    assert_problem(response, 403, "api_key_not_allowed")
    assert not await happened(scene, action)


@pytest.mark.parametrize("action", ACTIONS, ids=ACTION_IDS)
async def test_a_stale_login_needs_the_current_password(
    app: FastAPI, client: AsyncClient, action: Action
) -> None:
    scene = await scene_for(app, client, action)
    headers = stale(app, scene.tokens)

    assert_problem(await act(scene, action, headers), 401, "fresh_login_required")
    wrong = await act(scene, action, headers, current_password="a guess")
    assert_problem(wrong, 401, "wrong_password")
    assert not await happened(scene, action)

    right = await act(scene, action, headers, current_password=DEFAULT_PASSWORD)
    assert right.status_code in (200, 204), right.text
    assert await happened(scene, action)


@pytest.mark.parametrize("action", ACTIONS, ids=ACTION_IDS)
async def test_a_fresh_login_is_proof_enough(
    app: FastAPI, client: AsyncClient, action: Action
) -> None:
    scene = await scene_for(app, client, action)
    response = await act(scene, action, bearer(scene.tokens))
    assert response.status_code in (200, 204), response.text
    assert await happened(scene, action)


async def test_a_superusers_key_may_still_rename_an_account(
    app: FastAPI, client: AsyncClient
) -> None:
    # Only access changes need the proof: a new name grants nothing.
    scene = await scene_for(app, client, ACTIONS[1])
    created = await create_key(client, bearer(scene.tokens), current_password=DEFAULT_PASSWORD)
    key = {"X-API-Key": created.json()["key"]}
    response = await client.patch(
        f"{USERS}/{scene.target_id}", json={"full_name": "Renamed"}, headers=key
    )
    assert response.status_code == 200, response.text
    assert response.json()["full_name"] == "Renamed"


@pytest.mark.parametrize("scopes", KEY_SCOPES, ids=KEY_IDS)
async def test_an_api_key_cannot_log_its_owner_out_everywhere(
    client: AsyncClient, scopes: list[str] | None
) -> None:
    await register(client, CALLER)
    session = bearer(await login(client, CALLER))
    created = await create_key(client, session, scopes=scopes, current_password=DEFAULT_PASSWORD)
    key = {"X-API-Key": created.json()["key"]}

    assert_problem(await client.post(LOGOUT_ALL, headers=key), 403, "api_key_not_allowed")
    assert await me_status(client, session) == 200
    assert (await client.post(LOGOUT_ALL, headers=session)).status_code == 204
    assert await me_status(client, session) == 401


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("delete", "/api/v1/users/me"),
        ("delete", "/api/v1/users/{user_id}"),
        ("patch", "/api/v1/users/{user_id}"),
    ],
)
async def test_the_openapi_document_states_the_proof(method: str, path: str) -> None:
    document = create_app(make_settings()).openapi()
    operation = document["paths"][path][method]
    [content] = operation["requestBody"]["content"].values()
    name = content["schema"]["$ref"].rsplit("/", 1)[-1]
    assert "current_password" in document["components"]["schemas"][name]["properties"]
    responses = operation["responses"]
    for code in ("wrong_password", "fresh_login_required"):
        assert f"`{code}`" in responses["401"]["description"]
    assert "`api_key_not_allowed`" in responses["403"]["description"]
