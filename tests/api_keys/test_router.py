"""API keys over HTTP: created once, listed without the key, scoped, revocable, expiring."""

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient
from sqlalchemy import select, update

from app.api_keys.models import ApiKey
from app.auth.scopes import Scope
from tests.harness import assert_problem, factory
from tests.identity import bearer, login, make_superuser, register, signed_up

pytestmark = pytest.mark.anyio

KEYS = "/api/v1/api-keys"
ME = "/api/v1/users/me"
ALICE = "alice@example.com"
BOB = "bob@example.com"
ADMIN = "admin@example.com"
ALL_SCOPES = sorted(Scope)


def api_key(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


async def create_key(
    client: AsyncClient, headers: dict[str, str], name: str = "ci", **body: Any
) -> dict[str, Any]:
    """Create a key through the API and return the creation response."""
    response = await client.post(KEYS, json={"name": name, **body}, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def list_keys(client: AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get(KEYS, headers=headers)
    assert response.status_code == 200, response.text
    keys: list[dict[str, Any]] = response.json()["items"]
    return keys


async def expire_key(app: FastAPI, key_id: str) -> None:
    """Move the key's expiry one second into the past, directly in the database."""
    async with factory(app)() as session:
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == uuid.UUID(key_id))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()


def in_a_day() -> datetime:
    return (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)


# --- create, list, revoke -------------------------------------------------------------------


async def test_create_shows_the_key_once_and_the_list_never_does(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    expires = in_a_day()
    before = datetime.now(UTC)

    created = await create_key(
        client, headers, name="deploy bot", scopes=["users:read"], expires_at=expires.isoformat()
    )

    key = created["key"]
    assert created["name"] == "deploy bot"
    assert created["scopes"] == ["users:read"]
    assert created["last_used_at"] is None
    assert datetime.fromisoformat(created["expires_at"]) == expires
    assert before <= datetime.fromisoformat(created["created_at"]) <= datetime.now(UTC)
    assert key.startswith(created["prefix"] + "_")
    assert len(key) > len(created["prefix"]) + 32

    response = await client.get(KEYS, headers=headers)
    assert response.status_code == 200
    page = response.json()
    assert (page["total"], page["limit"], page["offset"]) == (1, 50, 0)
    [listed] = page["items"]
    assert listed == {
        "id": created["id"],
        "name": "deploy bot",
        "prefix": created["prefix"],
        "scopes": ["users:read"],
        "created_at": listed["created_at"],
        "last_used_at": None,
        "expires_at": listed["expires_at"],
    }
    assert datetime.fromisoformat(listed["created_at"]) == datetime.fromisoformat(
        created["created_at"]
    )
    assert datetime.fromisoformat(listed["expires_at"]) == expires
    assert key not in response.text
    assert key.removeprefix(created["prefix"] + "_") not in response.text


async def test_without_scopes_a_key_gets_all_of_them(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)

    created = await create_key(client, headers)

    assert created["scopes"] == ALL_SCOPES
    # Without expires_at a key gets the default lifetime (API_KEY_DEFAULT_TTL_DAYS).
    lifetime = datetime.fromisoformat(created["expires_at"]) - datetime.fromisoformat(
        created["created_at"]
    )
    assert lifetime == timedelta(days=90)


async def test_list_shows_only_the_callers_keys_newest_first(client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    bob = await signed_up(client, BOB)
    first = await create_key(client, alice, name="first")
    second = await create_key(client, alice, name="second")
    await create_key(client, bob, name="bob's")

    listed = await list_keys(client, alice)

    assert [k["id"] for k in listed] == [second["id"], first["id"]]
    assert first["prefix"] != second["prefix"]


async def test_unknown_scope_is_refused(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)

    response = await client.post(
        KEYS, json={"name": "ci", "scopes": ["users:admin"]}, headers=headers
    )

    assert_problem(response, 422, "validation_error")
    assert await list_keys(client, headers) == []


async def test_expiry_in_the_past_is_refused(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    yesterday = datetime.now(UTC) - timedelta(days=1)

    response = await client.post(
        KEYS, json={"name": "ci", "expires_at": yesterday.isoformat()}, headers=headers
    )

    assert_problem(response, 422, "expiry_in_the_past")
    assert await list_keys(client, headers) == []


async def test_expiry_without_a_time_zone_is_refused(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    naive = in_a_day().replace(tzinfo=None)

    response = await client.post(
        KEYS, json={"name": "ci", "expires_at": naive.isoformat()}, headers=headers
    )

    assert_problem(response, 422, "validation_error")


async def test_revoked_key_stops_working(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    created = await create_key(client, headers)
    assert (await client.get(ME, headers=api_key(created["key"]))).status_code == 200

    deleted = await client.delete(f"{KEYS}/{created['id']}", headers=headers)

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_problem(await client.get(ME, headers=api_key(created["key"])), 401, "invalid_token")
    assert await list_keys(client, headers) == []
    again = await client.delete(f"{KEYS}/{created['id']}", headers=headers)
    assert_problem(again, 404, "api_key_not_found")


async def test_deleting_another_users_key_is_not_found(client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    bob = await signed_up(client, BOB)
    created = await create_key(client, alice)

    response = await client.delete(f"{KEYS}/{created['id']}", headers=bob)

    assert_problem(response, 404, "api_key_not_found")
    assert (await client.get(ME, headers=api_key(created["key"]))).status_code == 200
    assert [k["id"] for k in await list_keys(client, alice)] == [created["id"]]
    unknown = await client.delete(f"{KEYS}/{uuid.uuid4()}", headers=bob)
    assert_problem(unknown, 404, "api_key_not_found")


# --- authenticating with X-API-Key ----------------------------------------------------------


async def test_key_authenticates_as_its_owner(client: AsyncClient) -> None:
    alice = await register(client, ALICE)
    alice_key = (await create_key(client, bearer(await login(client, ALICE))))["key"]
    bob_key = (await create_key(client, await signed_up(client, BOB)))["key"]

    as_alice = await client.get(ME, headers=api_key(alice_key))
    as_bob = await client.get(ME, headers=api_key(bob_key))

    assert as_alice.status_code == 200, as_alice.text
    assert as_alice.json()["id"] == alice["id"]
    assert as_alice.json()["email"] == ALICE
    assert as_bob.status_code == 200, as_bob.text
    assert as_bob.json()["email"] == BOB


async def test_a_key_is_limited_to_its_scopes(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    read_only = api_key((await create_key(client, headers, scopes=["users:read"]))["key"])

    assert (await client.get(ME, headers=read_only)).status_code == 200
    patched = await client.patch(ME, json={"full_name": "Mallory"}, headers=read_only)
    assert_problem(patched, 403, "insufficient_scope")
    minted = await client.post(KEYS, json={"name": "more"}, headers=read_only)
    assert_problem(minted, 403, "insufficient_scope")
    assert_problem(await client.get(KEYS, headers=read_only), 403, "insufficient_scope")
    # Nothing changed.
    me = (await client.get(ME, headers=headers)).json()
    assert me["full_name"] is None
    assert len(await list_keys(client, headers)) == 1


async def test_a_key_with_the_scope_may_do_it(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    writer = api_key((await create_key(client, headers, scopes=["users:write"]))["key"])

    patched = await client.patch(ME, json={"full_name": "Alice"}, headers=writer)

    assert patched.status_code == 200, patched.text
    assert patched.json()["full_name"] == "Alice"
    # users:write alone does not include reading.
    assert_problem(await client.get(ME, headers=writer), 403, "insufficient_scope")


async def test_expired_key_is_refused(client: AsyncClient, app: FastAPI) -> None:
    headers = await signed_up(client, ALICE)
    created = await create_key(client, headers, expires_at=in_a_day().isoformat())
    assert (await client.get(ME, headers=api_key(created["key"]))).status_code == 200

    await expire_key(app, created["id"])

    response = await client.get(ME, headers=api_key(created["key"]))
    assert_problem(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_key_of_a_deactivated_user_is_refused(client: AsyncClient, app: FastAPI) -> None:
    admin = await signed_up(client, ADMIN)
    await make_superuser(app, ADMIN)
    alice = await register(client, ALICE)
    created = await create_key(client, bearer(await login(client, ALICE)))
    assert (await client.get(ME, headers=api_key(created["key"]))).status_code == 200

    deactivated = await client.patch(
        f"/api/v1/users/{alice['id']}", json={"is_active": False}, headers=admin
    )
    assert deactivated.status_code == 200, deactivated.text

    assert_problem(await client.get(ME, headers=api_key(created["key"])), 401, "invalid_token")


async def test_garbage_key_is_refused(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    created = await create_key(client, headers)
    real, prefix = created["key"], created["prefix"]
    secret = real.removeprefix(prefix + "_")

    for garbage in ("garbage", f"{prefix}_{secret[::-1]}", real + "x", prefix):
        response = await client.get(ME, headers=api_key(garbage))
        assert_problem(response, 401, "invalid_token")


@pytest.mark.parametrize(
    ("key_is_good", "authorization"),
    [
        (False, "good"),
        (True, "Bearer not.a.token"),
        (True, "good"),
        (True, "Basic eDp5"),
        (True, ""),
        (None, "good"),  # an empty X-API-Key beside a good token
    ],
)
async def test_a_request_with_a_key_and_an_authorization_header_is_refused(
    client: AsyncClient, key_is_good: bool | None, authorization: str
) -> None:
    # One credential a request: a bad one is never rescued by a good one beside it, whichever
    # is which (a token of another scheme, or an empty header, is a bad one), and two good ones
    # do not let the server guess which acts.
    headers = await signed_up(client, ALICE)
    key = (await create_key(client, headers))["key"] if key_is_good else "garbage"
    if key_is_good is None:
        key = ""
    token = headers if authorization == "good" else {"Authorization": authorization}

    response = await client.get(ME, headers={**token, **api_key(key)})

    body = assert_problem(response, 401, "invalid_token")
    assert "not both" in body["detail"]


async def test_last_used_at_is_set_after_use(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    created = await create_key(client, headers)
    [listed] = await list_keys(client, headers)
    assert listed["last_used_at"] is None

    before = datetime.now(UTC)
    assert (await client.get(ME, headers=api_key(created["key"]))).status_code == 200
    after = datetime.now(UTC)

    [listed] = await list_keys(client, headers)
    assert listed["last_used_at"] is not None
    assert before <= datetime.fromisoformat(listed["last_used_at"]) <= after


async def test_key_is_stored_only_as_its_sha256_digest(client: AsyncClient, app: FastAPI) -> None:
    headers = await signed_up(client, ALICE)
    created = await create_key(client, headers)
    key = created["key"]
    secret = key.removeprefix(created["prefix"] + "_")

    table = ApiKey.__table__
    async with factory(app)() as session:
        [row] = (await session.execute(select(table))).mappings().all()

    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert row["prefix"] == created["prefix"]
    for value in row.values():
        assert key not in str(value)
        assert secret not in str(value)


# --- scopes must hold on every route --------------------------------------------------------


async def test_a_key_cannot_create_a_key_with_more_scopes_than_it_has(
    client: AsyncClient,
) -> None:
    headers = await signed_up(client, ALICE)
    key_maker = api_key((await create_key(client, headers, scopes=["api-keys:write"]))["key"])

    escalated = await client.post(
        KEYS, json={"name": "escalated", "scopes": ["users:write"]}, headers=key_maker
    )

    assert_problem(escalated, 403, "insufficient_scope")


async def test_a_superusers_read_only_key_cannot_administer_users(
    client: AsyncClient, app: FastAPI
) -> None:
    admin = await signed_up(client, ADMIN)
    await make_superuser(app, ADMIN)
    bob = await register(client, BOB)
    read_only = api_key((await create_key(client, admin, scopes=["users:read"]))["key"])

    response = await client.patch(
        f"/api/v1/users/{bob['id']}", json={"is_active": False}, headers=read_only
    )

    assert_problem(response, 403, "insufficient_scope")
    bob_now = await client.get(f"/api/v1/users/{bob['id']}", headers=admin)
    assert bob_now.json()["is_active"] is True


async def test_a_key_without_users_read_cannot_read_the_account(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    me = (await client.get(ME, headers=headers)).json()
    keys_only = api_key((await create_key(client, headers, scopes=["api-keys:read"]))["key"])
    assert_problem(await client.get(ME, headers=keys_only), 403, "insufficient_scope")

    by_id = await client.get(f"/api/v1/users/{me['id']}", headers=keys_only)
    legacy = await client.get("/auth/me", headers=keys_only)

    assert_problem(by_id, 403, "insufficient_scope")
    assert_problem(legacy, 403, "insufficient_scope")


async def test_a_read_only_key_cannot_log_out_every_session(client: AsyncClient) -> None:
    await register(client, ALICE)
    tokens = await login(client, ALICE)
    headers = bearer(tokens)
    read_only = api_key((await create_key(client, headers, scopes=["users:read"]))["key"])

    response = await client.post("/api/v1/auth/logout-all", headers=read_only)

    assert_problem(response, 403, "insufficient_scope")
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200


async def test_every_operation_that_refuses_a_key_for_its_scopes_documents_the_403(
    client: AsyncClient, app: FastAPI
) -> None:
    # A narrow key is sent to every operation of the document; wherever it is refused with
    # 403, the document must say the operation can answer 403.
    key = (await create_key(client, await signed_up(client, ALICE), scopes=["items:read"]))["key"]
    refused = []
    for path, item in app.openapi()["paths"].items():
        for method, operation in item.items():
            url = re.sub(r"\{[^{}]+\}", str(uuid.uuid4()), path)
            body: dict[str, Any] | None = {} if method in {"post", "put", "patch"} else None
            response = await client.request(method.upper(), url, headers=api_key(key), json=body)
            if response.status_code == 403:
                refused.append(f"{method.upper()} {path}")
                assert "403" in operation["responses"], refused[-1]
    assert "GET /auth/me" in refused  # the check met refusals, this one among them


async def test_a_key_reaches_only_itself_and_the_keys_it_created(client: AsyncClient) -> None:
    """A key never lists, reads or revokes its parent, a sibling or a broader key."""
    session = await signed_up(client, ALICE)
    manage = ["api-keys:read", "api-keys:write"]
    broad = await create_key(client, session, name="broad")
    parent = await create_key(client, session, name="parent", scopes=manage)
    as_parent = api_key(parent["key"])
    child = (
        await client.post(KEYS, json={"name": "child", "scopes": manage}, headers=as_parent)
    ).json()
    as_child = api_key(child["key"])
    grandchild = (await client.post(KEYS, json={"name": "grandchild"}, headers=as_child)).json()
    sibling = (await client.post(KEYS, json={"name": "sibling"}, headers=as_parent)).json()

    listed = {key["name"] for key in await list_keys(client, as_child)}
    others = [broad, parent, sibling]
    reads = [
        (await client.get(f"{KEYS}/{key['id']}", headers=as_child)).status_code for key in others
    ]
    revokes = [
        (await client.delete(f"{KEYS}/{key['id']}", headers=as_child)).status_code for key in others
    ]
    own = (await client.get(f"{KEYS}/{grandchild['id']}", headers=as_child)).status_code
    everything = {key["name"] for key in await list_keys(client, session)}
    revoked_own = await client.delete(f"{KEYS}/{grandchild['id']}", headers=as_child)

    assert listed == {"child", "grandchild"}
    assert reads == revokes == [404, 404, 404]
    assert own == 200
    assert everything == {"broad", "parent", "child", "grandchild", "sibling"}  # nothing revoked
    assert revoked_own.status_code == 204
