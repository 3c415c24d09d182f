"""User endpoints over the real app and databases: registration, the caller's own account,
administration, and the first-superuser bootstrap.
"""

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api_keys.models import ApiKey
from app.auth.models import LoginFailure, RefreshToken
from app.core.config import Settings
from app.core.security import PasswordHasher
from app.db.base import utcnow
from app.db.session import create_engine, create_session_factory
from app.deps import resources_of
from app.main import create_app
from app.users import service as users_service
from app.users.models import User
from tests.harness import assert_problem as problem
from tests.harness import client_for, log_lines, make_settings, running
from tests.identity import DEFAULT_PASSWORD, bearer, login, make_superuser, register, signed_up

pytestmark = pytest.mark.anyio

PROBLEM = "application/problem+json"
USERS = "/api/v1/users"
ME = f"{USERS}/me"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
PUBLIC_FIELDS = {
    "id", "email", "full_name", "is_active", "is_superuser", "email_verified_at", "created_at",
}  # fmt: skip
NEW_PASSWORD = "a brand new passphrase"
BOOTSTRAP_PASSWORD = "bootstrap passphrase 1"


def settings_for(database_url: str, **overrides: Any) -> Settings:
    return make_settings(DATABASE_URL=database_url, **overrides)


def pointers(body: dict[str, Any]) -> set[str]:
    return {item["pointer"] for item in body["errors"] if "pointer" in item}


def without_request(body: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in ("request_id", *keys)}


async def refresh_status(client: AsyncClient, refresh_token: str) -> int:
    response = await client.post(REFRESH, json={"refresh_token": refresh_token})
    return response.status_code


async def login_status(client: AsyncClient, email: str, password: str = DEFAULT_PASSWORD) -> int:
    response = await client.post(LOGIN, data={"username": email, "password": password})
    return response.status_code


async def admin_headers(client: AsyncClient, app: FastAPI, email: str) -> dict[str, str]:
    """Register `email`, promote it to superuser and return its bearer header."""
    await register(client, email)
    await make_superuser(app, email)
    return bearer(await login(client, email))


# --- Registration ------------------------------------------------------------------------------


async def test_register_returns_the_public_user(client: AsyncClient) -> None:
    response = await client.post(
        USERS,
        json={"email": "reg-public@example.com", "password": DEFAULT_PASSWORD, "full_name": "Ann"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == PUBLIC_FIELDS
    assert not [key for key in body if "password" in key or "hash" in key]
    assert DEFAULT_PASSWORD not in response.text
    assert "argon2" not in response.text
    assert body["email"] == "reg-public@example.com"
    assert body["full_name"] == "Ann"
    assert body["is_active"] is True
    assert body["is_superuser"] is False
    assert body["email_verified_at"] is None
    uuid.UUID(body["id"])


async def test_register_ignores_a_self_granted_superuser_flag(client: AsyncClient) -> None:
    response = await client.post(
        USERS,
        json={
            "email": "reg-sneaky@example.com",
            "password": DEFAULT_PASSWORD,
            "is_superuser": True,
        },
    )
    assert response.status_code in (201, 422), response.text
    if response.status_code == 201:
        assert response.json()["is_superuser"] is False
        me = await client.get(ME, headers=bearer(await login(client, "reg-sneaky@example.com")))
        assert me.json()["is_superuser"] is False


async def test_register_normalises_the_email(client: AsyncClient) -> None:
    user = await register(client, " Ann@Example.COM ")
    assert user["email"] == "ann@example.com"

    duplicate = await client.post(
        USERS, json={"email": "ANN@example.com", "password": "another passphrase"}
    )
    problem(duplicate, 409, "email_taken")
    # The normalised address logs in, whatever case the client types.
    assert await login_status(client, "ann@example.com") == 200
    assert await login_status(client, " ANN@EXAMPLE.com") == 200


async def test_register_twice_is_a_conflict(client: AsyncClient) -> None:
    await register(client, "reg-twice@example.com")
    response = await client.post(
        USERS, json={"email": "reg-twice@example.com", "password": DEFAULT_PASSWORD}
    )
    body = problem(response, 409, "email_taken")
    assert body["instance"] == USERS


@pytest.mark.parametrize(
    "password", ["", "x" * 7, "x" * 129, "ü" * 129], ids=["empty", "7", "129", "129-unicode"]
)
async def test_register_refuses_a_weak_or_oversized_password(
    client: AsyncClient, password: str
) -> None:
    response = await client.post(
        USERS, json={"email": "reg-weak@example.com", "password": password}
    )
    body = problem(response, 422, "validation_error")
    assert pointers(body) == {"#/password"}
    assert password == "" or password not in response.text, "the password is not echoed back"
    # Nothing was created: the address is still free.
    await register(client, "reg-weak@example.com")


@pytest.mark.parametrize("length", [8, 128])
async def test_register_accepts_passwords_at_the_length_limits(
    client: AsyncClient, length: int
) -> None:
    password = "p" * length
    await register(client, f"reg-len{length}@example.com", password)
    assert await login_status(client, f"reg-len{length}@example.com", password) == 200


@pytest.mark.parametrize(
    "email", ["not-an-email", "a@", "@example.com", "two@@example.com", "", "a b@example.com"]
)
async def test_register_refuses_an_invalid_email(client: AsyncClient, email: str) -> None:
    response = await client.post(USERS, json={"email": email, "password": DEFAULT_PASSWORD})
    body = problem(response, 422, "validation_error")
    assert pointers(body) == {"#/email"}


async def test_register_requires_email_and_password(client: AsyncClient) -> None:
    response = await client.post(USERS, json={"full_name": "Nobody"})
    body = problem(response, 422, "validation_error")
    assert pointers(body) == {"#/email", "#/password"}


# --- The caller's own account ------------------------------------------------------------------


async def test_read_me_returns_the_caller(client: AsyncClient) -> None:
    created = await register(client, "me-read@example.com", full_name="Me")
    response = await client.get(ME, headers=bearer(await login(client, "me-read@example.com")))
    assert response.status_code == 200
    assert response.json() == created


async def test_update_me_changes_the_full_name(client: AsyncClient) -> None:
    headers = await signed_up(client, "me-name@example.com")
    response = await client.patch(ME, json={"full_name": "New Name"}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["full_name"] == "New Name"
    assert response.json()["email"] == "me-name@example.com"
    assert (await client.get(ME, headers=headers)).json()["full_name"] == "New Name"


async def mark_verified(app: FastAPI, user_id: str) -> None:
    async with resources_of(app).session_factory() as session:
        await session.execute(
            update(User).where(User.id == uuid.UUID(user_id)).values(email_verified_at=utcnow())
        )
        await session.commit()


async def stored_user(app: FastAPI, user_id: str) -> User | None:
    factory: async_sessionmaker[AsyncSession] = resources_of(app).session_factory
    async with factory() as session:
        return await session.get(User, uuid.UUID(user_id))


async def test_changing_the_email_clears_verification(app: FastAPI, client: AsyncClient) -> None:
    user = await register(client, "me-old@example.com")
    headers = bearer(await login(client, "me-old@example.com"))
    await mark_verified(app, user["id"])
    assert (await client.get(ME, headers=headers)).json()["email_verified_at"] is not None

    response = await client.patch(ME, json={"email": " Me-New@Example.COM "}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["email"] == "me-new@example.com"
    assert response.json()["email_verified_at"] is None
    stored = await stored_user(app, user["id"])
    assert stored is not None
    assert stored.email == "me-new@example.com"
    assert stored.email_verified_at is None

    assert await login_status(client, "me-new@example.com") == 200
    assert await login_status(client, "me-old@example.com") == 401


async def test_same_email_in_another_case_keeps_verification(
    app: FastAPI, client: AsyncClient
) -> None:
    user = await register(client, "me-same@example.com")
    headers = bearer(await login(client, "me-same@example.com"))
    await mark_verified(app, user["id"])
    response = await client.patch(ME, json={"email": "ME-SAME@example.com"}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["email"] == "me-same@example.com"
    assert response.json()["email_verified_at"] is not None


async def test_changing_to_another_accounts_email_is_a_conflict(
    app: FastAPI, client: AsyncClient
) -> None:
    await register(client, "me-taken@example.com")
    user = await register(client, "me-wants@example.com")
    headers = bearer(await login(client, "me-wants@example.com"))
    response = await client.patch(ME, json={"email": "Me-Taken@example.com"}, headers=headers)
    problem(response, 409, "email_taken")
    stored = await stored_user(app, user["id"])
    assert stored is not None
    assert stored.email == "me-wants@example.com"
    assert (await client.get(ME, headers=headers)).json()["email"] == "me-wants@example.com"


@pytest.mark.parametrize(
    "changes",
    [
        {"nickname": "x"},
        {"is_superuser": True},
        {"is_active": False},
        {"hashed_password": "x"},
        {"email_verified_at": "2020-01-01T00:00:00Z"},
    ],
    ids=["nickname", "is_superuser", "is_active", "hashed_password", "email_verified_at"],
)
async def test_update_me_refuses_unknown_fields(
    client: AsyncClient, changes: dict[str, Any]
) -> None:
    headers = await signed_up(client, "me-extra@example.com")
    response = await client.patch(ME, json={"full_name": "Kept", **changes}, headers=headers)
    body = problem(response, 422, "validation_error")
    assert pointers(body) == {f"#/{next(iter(changes))}"}
    me = (await client.get(ME, headers=headers)).json()
    assert me["full_name"] is None
    assert me["is_superuser"] is False
    assert me["is_active"] is True


async def test_update_me_refuses_an_invalid_email(client: AsyncClient) -> None:
    headers = await signed_up(client, "me-bad@example.com")
    response = await client.patch(ME, json={"email": "nope"}, headers=headers)
    assert pointers(problem(response, 422, "validation_error")) == {"#/email"}


# --- Password change ---------------------------------------------------------------------------


async def test_change_password_swaps_the_password(client: AsyncClient) -> None:
    await register(client, "pw-swap@example.com")
    headers = bearer(await login(client, "pw-swap@example.com"))
    response = await client.post(
        f"{ME}/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert await login_status(client, "pw-swap@example.com", DEFAULT_PASSWORD) == 401
    assert await login_status(client, "pw-swap@example.com", NEW_PASSWORD) == 200


async def test_change_password_revokes_other_sessions_only(client: AsyncClient) -> None:
    await register(client, "pw-sessions@example.com")
    this = await login(client, "pw-sessions@example.com")
    other = await login(client, "pw-sessions@example.com")
    response = await client.post(
        f"{ME}/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(this),
    )
    assert response.status_code == 204, response.text

    assert await refresh_status(client, other["refresh_token"]) == 401
    assert (await client.get(ME, headers=bearer(this))).status_code == 200
    kept = await client.post(REFRESH, json={"refresh_token": this["refresh_token"]})
    assert kept.status_code == 200, kept.text
    # The rotated token of the kept session keeps working too.
    assert await refresh_status(client, kept.json()["refresh_token"]) == 200


async def test_change_password_with_a_wrong_current_password(client: AsyncClient) -> None:
    await register(client, "pw-wrong@example.com")
    tokens = await login(client, "pw-wrong@example.com")
    response = await client.post(
        f"{ME}/password",
        json={"current_password": "not the password", "new_password": NEW_PASSWORD},
        headers=bearer(tokens),
    )
    problem(response, 401, "wrong_password")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "not the password" not in response.text
    # Nothing changed: the old password still logs in, the new one does not, no session died.
    assert await login_status(client, "pw-wrong@example.com", NEW_PASSWORD) == 401
    assert await login_status(client, "pw-wrong@example.com", DEFAULT_PASSWORD) == 200
    assert await refresh_status(client, tokens["refresh_token"]) == 200


async def test_change_password_refuses_a_weak_new_password(client: AsyncClient) -> None:
    await register(client, "pw-weak@example.com")
    headers = bearer(await login(client, "pw-weak@example.com"))
    response = await client.post(
        f"{ME}/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": "short"},
        headers=headers,
    )
    assert pointers(problem(response, 422, "validation_error")) == {"#/new_password"}
    assert await login_status(client, "pw-weak@example.com", DEFAULT_PASSWORD) == 200


# --- Deleting one's own account ----------------------------------------------------------------


async def rows_of(app: FastAPI, model: type[RefreshToken | ApiKey], user_id: str) -> int:
    async with resources_of(app).session_factory() as session:
        count = await session.scalar(
            select(func.count()).select_from(model).where(model.user_id == uuid.UUID(user_id))
        )
    return int(count or 0)


async def refresh_token_rows(app: FastAPI, user_id: str) -> int:
    return await rows_of(app, RefreshToken, user_id)


async def test_delete_me_removes_the_account_and_its_tokens(
    app: FastAPI, client: AsyncClient
) -> None:
    user = await register(client, "del-me@example.com")
    tokens = await login(client, "del-me@example.com")
    await login(client, "del-me@example.com")
    assert await refresh_token_rows(app, user["id"]) == 2
    key = await client.post("/api/v1/api-keys", json={"name": "mine"}, headers=bearer(tokens))
    assert key.status_code == 201, key.text
    assert await rows_of(app, ApiKey, user["id"]) == 1

    response = await client.delete(ME, headers=bearer(tokens))
    assert response.status_code == 204, response.text
    assert response.content == b""

    assert await stored_user(app, user["id"]) is None
    assert await refresh_token_rows(app, user["id"]) == 0
    assert await rows_of(app, ApiKey, user["id"]) == 0
    assert await refresh_status(client, tokens["refresh_token"]) == 401
    problem(await client.get(ME, headers=bearer(tokens)), 401, "invalid_token")
    problem(
        await client.post(
            LOGIN, data={"username": "del-me@example.com", "password": DEFAULT_PASSWORD}
        ),
        401,
        "invalid_credentials",
    )
    # The address is free again.
    await register(client, "del-me@example.com")


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


# --- Authentication is required ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", ME, None),
        ("PATCH", ME, {"full_name": "X"}),
        ("POST", f"{ME}/password", {"current_password": "x", "new_password": NEW_PASSWORD}),
        ("DELETE", ME, None),
        ("GET", USERS, None),
        ("GET", f"{USERS}/{uuid.UUID(int=1)}", None),
        ("PATCH", f"{USERS}/{uuid.UUID(int=1)}", {"full_name": "X"}),
        ("DELETE", f"{USERS}/{uuid.UUID(int=1)}", None),
    ],
)
async def test_requests_without_credentials_are_401(
    client: AsyncClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = await client.request(method, path, json=body)
    problem(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_garbage_bearer_token_is_401(client: AsyncClient) -> None:
    response = await client.get(ME, headers=bearer("not-a-jwt"))
    problem(response, 401, "invalid_token")
    assert response.headers["www-authenticate"].startswith("Bearer")


# --- First superuser bootstrap -------------------------------------------------------------------


@pytest.fixture
async def committed(settings: Settings) -> AsyncIterator[list[str]]:
    """Emails whose committed rows (users, login failures) are deleted after the test.

    The bootstrap runs outside the test's rolled-back transaction, so what it creates stays.
    """
    emails: list[str] = []
    yield emails
    engine = create_engine(settings.database, application_name="tests")
    try:
        async with engine.begin() as connection:
            await connection.execute(delete(LoginFailure).where(LoginFailure.email.in_(emails)))
            await connection.execute(delete(User).where(User.email.in_(emails)))
    finally:
        await engine.dispose()


async def test_first_superuser_is_created_once(settings: Settings, committed: list[str]) -> None:
    committed.append("root@example.com")
    bootstrap = settings_for(
        settings.database.url,
        FIRST_SUPERUSER_EMAIL=" Root@Example.com ",
        FIRST_SUPERUSER_PASSWORD=BOOTSTRAP_PASSWORD,
    )

    ids = []
    for start in range(2):
        app = create_app(bootstrap)
        with log_lines() as logs:
            async with running(app), client_for(app) as client:
                tokens = await login(client, "root@example.com", BOOTSTRAP_PASSWORD)
                me = (await client.get(ME, headers=bearer(tokens))).json()
                listing = await client.get(USERS, params={"limit": 100}, headers=bearer(tokens))
        assert me["email"] == "root@example.com"
        assert me["is_superuser"] is True
        assert me["is_active"] is True
        assert listing.status_code == 200, listing.text
        roots = [u for u in listing.json()["items"] if u["email"] == "root@example.com"]
        assert [u["id"] for u in roots] == [me["id"]]
        assert len(logs.events("superuser_created")) == (1 if start == 0 else 0)
        ids.append(me["id"])
    assert ids[0] == ids[1]


async def test_first_superuser_leaves_an_existing_account_alone(
    settings: Settings, committed: list[str]
) -> None:
    committed.append("boss@example.com")
    engine = create_engine(settings.database, application_name="tests")
    try:
        async with create_session_factory(engine)() as session:
            existing = await users_service.create(
                session=session,
                hasher=PasswordHasher.from_settings(settings.auth),
                email="boss@example.com",
                password=DEFAULT_PASSWORD,
                full_name="The Boss",
            )
            await session.commit()
    finally:
        await engine.dispose()

    bootstrap = settings_for(
        settings.database.url,
        FIRST_SUPERUSER_EMAIL="BOSS@example.com",
        FIRST_SUPERUSER_PASSWORD=BOOTSTRAP_PASSWORD,
    )
    app = create_app(bootstrap)
    with log_lines() as logs:
        async with running(app), client_for(app) as client:
            assert await login_status(client, "boss@example.com", BOOTSTRAP_PASSWORD) == 401
            me = (await client.get(ME, headers=await signed_in(client, "boss@example.com"))).json()
    assert logs.events("superuser_created") == []
    assert me["id"] == str(existing.id)
    assert me["is_superuser"] is False
    assert me["full_name"] == "The Boss"


async def signed_in(client: AsyncClient, email: str) -> dict[str, str]:
    return bearer(await login(client, email))


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
