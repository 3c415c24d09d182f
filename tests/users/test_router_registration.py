"""Registering over the real app and databases: the public user, and what is refused."""

import uuid

import pytest
from httpx2 import AsyncClient

from tests.harness import assert_problem as problem
from tests.harness import pointers
from tests.identity import DEFAULT_PASSWORD, bearer, login, login_status, register
from tests.users.helpers import ME, PUBLIC_FIELDS, USERS

pytestmark = pytest.mark.anyio


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
