"""Attack: mint keys that outlive or outrank what minted them. Keys stay bounded by their origin."""

from datetime import UTC, datetime, timedelta

import pytest
from httpx2 import AsyncClient

from app.core.config import Settings
from app.main import create_app
from tests.harness import assert_problem, client_for, make_settings, running
from tests.identity import DEFAULT_PASSWORD
from tests.security.helpers import KEYS, ME, account, create_key

pytestmark = pytest.mark.anyio


def later(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


async def key_headers(
    client: AsyncClient, headers: dict[str, str], **body: object
) -> dict[str, str]:
    created = await create_key(client, headers, **body)
    assert created.status_code == 201, created.text
    return {"X-API-Key": created.json()["key"]}


async def test_a_session_needs_a_fresh_proof_to_create_a_key(settings: Settings) -> None:
    app = create_app(make_settings(DATABASE_URL=settings.database.url, FRESH_LOGIN_SECONDS=0))
    async with running(app), client_for(app) as client:
        headers = await account(client, "stale-key@example.com")
        assert_problem(await create_key(client, headers), 401, "fresh_login_required")
        assert (
            await create_key(client, headers, current_password=DEFAULT_PASSWORD)
        ).status_code == 201


async def test_a_key_minted_by_a_key_never_outlives_it(client: AsyncClient) -> None:
    headers = await account(client, "parent@example.com")
    parent = await key_headers(
        client,
        headers,
        current_password=DEFAULT_PASSWORD,
        scopes=["api-keys:write", "users:read"],
        expires_at=later(2),
    )
    too_long = await create_key(client, parent, scopes=["users:read"], expires_at=later(3))
    assert_problem(too_long, 422, "expiry_too_late")
    child = await create_key(client, parent, scopes=["users:read"])
    assert child.status_code == 201
    assert datetime.fromisoformat(child.json()["expires_at"]) <= datetime.now(UTC) + timedelta(
        days=2
    )


async def test_a_key_minted_by_a_key_never_outscopes_it(client: AsyncClient) -> None:
    headers = await account(client, "scoped@example.com")
    parent = await key_headers(
        client, headers, current_password=DEFAULT_PASSWORD, scopes=["api-keys:write"]
    )
    assert_problem(
        await create_key(client, parent, scopes=["users:write"]), 403, "insufficient_scope"
    )
    child = await create_key(client, parent)
    assert child.json()["scopes"] == ["api-keys:write"]


async def test_revoking_a_key_revokes_the_keys_it_minted(client: AsyncClient) -> None:
    headers = await account(client, "family@example.com")
    parent_created = await create_key(
        client, headers, current_password=DEFAULT_PASSWORD, scopes=["api-keys:write", "users:read"]
    )
    parent = {"X-API-Key": parent_created.json()["key"]}
    child = await key_headers(client, parent, scopes=["api-keys:write", "users:read"])
    grandchild = await key_headers(client, child, scopes=["users:read"])
    assert (await client.get(ME, headers=grandchild)).status_code == 200

    revoked = await client.delete(f"{KEYS}/{parent_created.json()['id']}", headers=headers)
    assert revoked.status_code == 204
    for key in (parent, child, grandchild):
        assert (await client.get(ME, headers=key)).status_code == 401


async def test_keys_get_a_default_lifetime_and_may_not_exceed_the_maximum(
    client: AsyncClient,
) -> None:
    headers = await account(client, "lifetime@example.com")
    default = await create_key(client, headers, current_password=DEFAULT_PASSWORD)
    expires = datetime.fromisoformat(default.json()["expires_at"])
    assert timedelta(days=89) < expires - datetime.now(UTC) <= timedelta(days=90)
    forever = await create_key(
        client, headers, current_password=DEFAULT_PASSWORD, expires_at=later(10_000)
    )
    assert_problem(forever, 422, "expiry_too_late")


async def test_an_empty_scope_list_is_refused(client: AsyncClient) -> None:
    headers = await account(client, "empty@example.com")
    response = await create_key(client, headers, current_password=DEFAULT_PASSWORD, scopes=[])
    assert_problem(response, 422, "validation_error")


async def test_the_lifetimes_follow_their_settings(settings: Settings) -> None:
    app = create_app(
        make_settings(
            DATABASE_URL=settings.database.url, API_KEY_DEFAULT_TTL_DAYS=3, API_KEY_MAX_TTL_DAYS=10
        )
    )
    async with running(app), client_for(app) as client:
        headers = await account(client, "short-lived@example.com")
        default = await create_key(client, headers, current_password=DEFAULT_PASSWORD)
        longest = await create_key(
            client, headers, current_password=DEFAULT_PASSWORD, expires_at=later(9.9)
        )
        too_late = await create_key(
            client, headers, current_password=DEFAULT_PASSWORD, expires_at=later(10.1)
        )
    expires = datetime.fromisoformat(default.json()["expires_at"]) - datetime.now(UTC)
    assert timedelta(days=2.9) < expires <= timedelta(days=3)
    assert longest.status_code == 201, longest.text
    assert_problem(too_late, 422, "expiry_too_late")
