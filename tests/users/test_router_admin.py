"""Administering users over the real app and databases: listing, reading, changing,
deactivating and deleting accounts, who may do it, and the read cache it keeps consistent.
"""

import uuid
from datetime import datetime
from typing import Any

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient

from app.deps import resources_of
from app.users.models import User
from tests.harness import assert_problem as problem
from tests.harness import pointers
from tests.identity import DEFAULT_PASSWORD, bearer, login, login_status, register, signed_up
from tests.users.helpers import (
    LOGIN,
    ME,
    PUBLIC_FIELDS,
    USERS,
    admin_headers,
    refresh_status,
    refresh_token_rows,
    stored_user,
)

pytestmark = pytest.mark.anyio


def without_request(body: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in ("request_id", *keys)}


# --- Administration ----------------------------------------------------------------------------


async def test_list_users_pages_oldest_first(app: FastAPI, client: AsyncClient) -> None:
    admin = await admin_headers(client, app, "list-admin@example.com")
    mine = ["list-admin@example.com"]
    for n in range(5):
        await register(client, f"list-{n}@example.com")
        mine.append(f"list-{n}@example.com")

    everything = await client.get(USERS, params={"limit": 100}, headers=admin)
    assert everything.status_code == 200, everything.text
    page = everything.json()
    assert page["limit"] == 100
    assert page["offset"] == 0
    total = page["total"]
    assert total >= len(mine)
    assert len(page["items"]) == total, "the test expects every user to fit on one page"
    items = page["items"]
    assert all(set(item) == PUBLIC_FIELDS for item in items)
    assert [item["email"] for item in items if item["email"] in mine] == mine
    created = [datetime.fromisoformat(item["created_at"]) for item in items]
    assert created == sorted(created)

    paged: list[dict[str, Any]] = []
    for offset in range(0, total + 2, 2):
        response = await client.get(USERS, params={"limit": 2, "offset": offset}, headers=admin)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["total"], body["limit"], body["offset"]) == (total, 2, offset)
        assert len(body["items"]) == min(2, max(0, total - offset))
        paged.extend(body["items"])
    assert paged == items

    default = (await client.get(USERS, headers=admin)).json()
    assert (default["limit"], default["offset"]) == (50, 0)
    assert default["items"] == items[:50]


@pytest.mark.parametrize(
    ("params", "name"),
    [({"limit": 101}, "limit"), ({"limit": 0}, "limit"), ({"offset": -1}, "offset")],
    ids=["limit-101", "limit-0", "offset-negative"],
)
async def test_list_users_refuses_bad_paging(
    app: FastAPI, client: AsyncClient, params: dict[str, int], name: str
) -> None:
    admin = await admin_headers(client, app, "list-bad@example.com")
    response = await client.get(USERS, params=params, headers=admin)
    body = problem(response, 422, "validation_error")
    assert [item.get("parameter") for item in body["errors"]] == [name]


async def test_list_users_accepts_the_largest_page(app: FastAPI, client: AsyncClient) -> None:
    admin = await admin_headers(client, app, "list-max@example.com")
    response = await client.get(USERS, params={"limit": 100}, headers=admin)
    assert response.status_code == 200
    assert response.json()["limit"] == 100


async def test_superuser_reads_any_user_by_id(app: FastAPI, client: AsyncClient) -> None:
    admin = await admin_headers(client, app, "read-admin@example.com")
    other = await register(client, "read-other@example.com", full_name="Other")
    response = await client.get(f"{USERS}/{other['id']}", headers=admin)
    assert response.status_code == 200, response.text
    assert response.json() == other


async def test_a_user_may_read_their_own_account_by_id(client: AsyncClient) -> None:
    user = await register(client, "read-self@example.com")
    headers = bearer(await login(client, "read-self@example.com"))
    response = await client.get(f"{USERS}/{user['id']}", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == user


async def test_another_users_id_is_403_whether_or_not_it_exists(client: AsyncClient) -> None:
    other = await register(client, "read-victim@example.com")
    headers = await signed_up(client, "read-nosy@example.com")

    existing = await client.get(f"{USERS}/{other['id']}", headers=headers)
    missing = await client.get(f"{USERS}/{uuid.uuid4()}", headers=headers)
    first = problem(existing, 403, "superuser_required")
    second = problem(missing, 403, "superuser_required")
    assert without_request(first, "instance") == without_request(second, "instance")
    assert existing.headers["content-type"] == missing.headers["content-type"]
    assert "read-victim" not in existing.text


@pytest.mark.parametrize(
    ("method", "body"),
    [("GET", None), ("PATCH", {"full_name": "X"}), ("DELETE", None)],
)
async def test_unknown_id_is_404_for_a_superuser(
    app: FastAPI, client: AsyncClient, method: str, body: dict[str, Any] | None
) -> None:
    admin = await admin_headers(client, app, f"missing-{method.lower()}@example.com")
    unknown = uuid.uuid4()
    response = await client.request(method, f"{USERS}/{unknown}", json=body, headers=admin)
    detail = problem(response, 404, "user_not_found")
    assert detail["instance"] == f"{USERS}/{unknown}"


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("GET", None, None),
        ("PATCH", "other", {"is_superuser": True}),
        ("PATCH", "self", {"is_superuser": True}),
        ("PATCH", "unknown", {"full_name": "X"}),
        ("DELETE", "other", None),
        ("DELETE", "unknown", None),
    ],
    ids=["list", "patch-other", "patch-self", "patch-unknown", "delete-other", "delete-unknown"],
)
async def test_administration_is_for_superusers_only(
    app: FastAPI,
    client: AsyncClient,
    method: str,
    target: str | None,
    body: dict[str, Any] | None,
) -> None:
    other = await register(client, "admin-victim@example.com")
    me = await register(client, "admin-plain@example.com")
    headers = bearer(await login(client, "admin-plain@example.com"))
    ids = {"other": other["id"], "self": me["id"], "unknown": str(uuid.uuid4())}
    path = USERS if target is None else f"{USERS}/{ids[target]}"

    response = await client.request(method, path, json=body, headers=headers)
    problem(response, 403, "superuser_required")

    stored_other = await stored_user(app, other["id"])
    stored_me = await stored_user(app, me["id"])
    assert stored_other is not None
    assert stored_me is not None
    assert stored_me.is_superuser is False
    assert stored_other.full_name is None


async def test_superuser_updates_name_and_roles(app: FastAPI, client: AsyncClient) -> None:
    admin = await admin_headers(client, app, "upd-admin@example.com")
    target = await register(client, "upd-target@example.com")
    target_headers = bearer(await login(client, "upd-target@example.com"))
    problem(await client.get(USERS, headers=target_headers), 403, "superuser_required")

    response = await client.patch(
        f"{USERS}/{target['id']}",
        json={"full_name": "Promoted", "is_superuser": True},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == PUBLIC_FIELDS
    assert (body["full_name"], body["is_superuser"], body["is_active"]) == ("Promoted", True, True)
    assert body["email"] == "upd-target@example.com"
    # The promotion applies to the token the user already holds.
    assert (await client.get(USERS, headers=target_headers)).status_code == 200

    demoted = await client.patch(
        f"{USERS}/{target['id']}", json={"is_superuser": False}, headers=admin
    )
    assert demoted.json()["is_superuser"] is False
    assert demoted.json()["full_name"] == "Promoted", "fields not sent are left alone"
    problem(await client.get(USERS, headers=target_headers), 403, "superuser_required")


@pytest.mark.parametrize(
    "changes",
    [{"email": "new@example.com"}, {"hashed_password": "x"}, {"nickname": "x"}],
    ids=["email", "hashed_password", "nickname"],
)
async def test_superuser_update_refuses_unknown_fields(
    app: FastAPI, client: AsyncClient, changes: dict[str, Any]
) -> None:
    admin = await admin_headers(client, app, "upd-extra-admin@example.com")
    target = await register(client, "upd-extra@example.com")
    response = await client.patch(f"{USERS}/{target['id']}", json=changes, headers=admin)
    assert pointers(problem(response, 422, "validation_error")) == {f"#/{next(iter(changes))}"}
    stored = await stored_user(app, target["id"])
    assert stored is not None
    assert stored.email == "upd-extra@example.com"


async def test_deactivated_user_cannot_log_in_or_use_their_token(
    app: FastAPI, client: AsyncClient
) -> None:
    admin = await admin_headers(client, app, "deact-admin@example.com")
    target = await register(client, "deact-target@example.com")
    tokens = await login(client, "deact-target@example.com")
    wrong = await client.post(
        LOGIN, data={"username": "deact-target@example.com", "password": "wrong password"}
    )
    wrong_body = problem(wrong, 401, "invalid_credentials")

    response = await client.patch(
        f"{USERS}/{target['id']}", json={"is_active": False}, headers=admin
    )
    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is False

    refused = await client.post(
        LOGIN, data={"username": "deact-target@example.com", "password": DEFAULT_PASSWORD}
    )
    refused_body = problem(refused, 401, "invalid_credentials")
    assert without_request(refused_body) == without_request(wrong_body)
    assert refused.headers["www-authenticate"] == wrong.headers["www-authenticate"]

    problem(await client.get(ME, headers=bearer(tokens)), 401, "invalid_token")
    assert await refresh_status(client, tokens["refresh_token"]) == 401

    reactivated = await client.patch(
        f"{USERS}/{target['id']}", json={"is_active": True}, headers=admin
    )
    assert reactivated.json()["is_active"] is True
    assert await login_status(client, "deact-target@example.com") == 200


async def test_superuser_deletes_a_user(app: FastAPI, client: AsyncClient) -> None:
    admin = await admin_headers(client, app, "del-admin@example.com")
    target = await register(client, "del-target@example.com")
    tokens = await login(client, "del-target@example.com")

    response = await client.delete(f"{USERS}/{target['id']}", headers=admin)
    assert response.status_code == 204, response.text
    assert response.content == b""

    problem(await client.get(f"{USERS}/{target['id']}", headers=admin), 404, "user_not_found")
    assert await refresh_token_rows(app, target["id"]) == 0
    problem(await client.get(ME, headers=bearer(tokens)), 401, "invalid_token")
    assert await refresh_status(client, tokens["refresh_token"]) == 401
    assert await login_status(client, "del-target@example.com") == 401
    problem(await client.delete(f"{USERS}/{target['id']}", headers=admin), 404, "user_not_found")


@pytest.mark.parametrize(
    ("method", "target"),
    [("GET", None), ("GET", "other"), ("GET", "self"), ("PATCH", "other"), ("DELETE", "other")],
    ids=["list", "read-other", "read-self", "update-other", "delete-other"],
)
async def test_api_key_without_user_scopes_cannot_reach_user_routes(
    app: FastAPI, client: AsyncClient, method: str, target: str | None
) -> None:
    """A superuser's key limited to `api-keys:read` must not read, change or delete users."""
    admin = await admin_headers(client, app, "scope-admin@example.com")
    me = (await client.get(ME, headers=admin)).json()
    other = await register(client, "scope-other@example.com")
    created = await client.post(
        "/api/v1/api-keys",
        json={"name": "read keys only", "scopes": ["api-keys:read"]},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    key = {"X-API-Key": created.json()["key"]}
    # The key works, and /users/me honours its scopes.
    assert (await client.get("/api/v1/api-keys", headers=key)).status_code == 200
    problem(await client.get(ME, headers=key), 403, "insufficient_scope")

    ids = {"other": other["id"], "self": me["id"]}
    path = USERS if target is None else f"{USERS}/{ids[target]}"
    body = {"is_active": False} if method == "PATCH" else None
    response = await client.request(method, path, json=body, headers=key)
    problem(response, 403, "insufficient_scope")
    stored = await stored_user(app, other["id"])
    assert stored is not None
    assert stored.is_active is True


# --- The read cache ----------------------------------------------------------------------------


async def test_reads_by_id_are_cached_and_every_write_invalidates(
    app: FastAPI, client: AsyncClient
) -> None:
    admin = await admin_headers(client, app, "cache-admin@example.com")
    target = await register(client, "cache-target@example.com")
    target_headers = bearer(await login(client, "cache-target@example.com"))
    url = f"{USERS}/{target['id']}"
    assert (await client.get(url, headers=admin)).json()["full_name"] is None
    assert await resources_of(app).cache.get(f"users:{target['id']}") is not None

    # A change the cache does not see (straight in the database) is served stale...
    async with resources_of(app).session_factory() as session:
        user = await session.get(User, uuid.UUID(target["id"]))
        assert user is not None
        user.full_name = "Behind the API"
        await session.commit()
    assert (await client.get(url, headers=admin)).json()["full_name"] is None
    # ...while every write through the API drops the cached copy.
    await client.patch(url, json={"full_name": "Admin-set"}, headers=admin)
    assert (await client.get(url, headers=admin)).json()["full_name"] == "Admin-set"
    await client.patch(ME, json={"full_name": "Self-set"}, headers=target_headers)
    assert (await client.get(url, headers=admin)).json()["full_name"] == "Self-set"
    await client.delete(ME, headers=target_headers)
    problem(await client.get(url, headers=admin), 404, "user_not_found")
