"""Attack: replay another request's stored response with credentials that could not make it."""

import uuid

import pytest
from httpx2 import AsyncClient

from tests.harness import assert_problem
from tests.identity import DEFAULT_PASSWORD
from tests.security.helpers import ITEMS, account, create_key

pytestmark = pytest.mark.anyio

ITEM = {"title": "Lamp", "price": "10.00", "currency": "EUR"}


async def read_only_key(client: AsyncClient, headers: dict[str, str]) -> dict[str, str]:
    created = await create_key(
        client, headers, scopes=["items:read"], current_password=DEFAULT_PASSWORD
    )
    assert created.status_code == 201, created.text
    return {"X-API-Key": created.json()["key"]}


async def test_a_key_without_the_routes_scope_gets_no_stored_response(
    client: AsyncClient,
) -> None:
    owner = await account(client, "owner@example.com")
    key = {"Idempotency-Key": str(uuid.uuid4())}
    created = await client.post(ITEMS, json=ITEM, headers={**owner, **key})
    assert created.status_code == 201
    reader = await read_only_key(client, owner)

    replay = await client.post(ITEMS, json=ITEM, headers={**reader, **key})

    assert_problem(replay, 403, "insufficient_scope")
    assert "idempotent-replayed" not in replay.headers
    assert created.json()["id"] not in replay.text


@pytest.mark.parametrize("body", [ITEM, {**ITEM, "title": "Another"}])
async def test_taken_keys_tell_nothing_before_authorization(
    client: AsyncClient, body: dict[str, str]
) -> None:
    # A replay (same body) and a reuse (other body, 422) both wait for the route's own checks.
    owner = await account(client, "taken@example.com")
    key = {"Idempotency-Key": str(uuid.uuid4())}
    assert (await client.post(ITEMS, json=ITEM, headers={**owner, **key})).status_code == 201
    reader = await read_only_key(client, owner)
    assert_problem(
        await client.post(ITEMS, json=body, headers={**reader, **key}), 403, "insufficient_scope"
    )


async def test_the_owner_still_gets_the_replay(client: AsyncClient) -> None:
    owner = await account(client, "replay@example.com")
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await client.post(ITEMS, json=ITEM, headers={**owner, **key})
    second = await client.post(ITEMS, json=ITEM, headers={**owner, **key})
    assert second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
