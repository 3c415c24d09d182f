"""Creating items over the real app and databases: the answer, defaults, trimming, limits,
and the bodies and callers that are refused.
"""

import uuid
from datetime import timedelta
from typing import Any

import pytest
from httpx2 import AsyncClient

from tests.harness import assert_problem as problem
from tests.harness import pointers
from tests.identity import signed_up
from tests.items.helpers import (
    ALICE,
    ITEMS,
    create_item,
    item_url,
    list_page,
    new_item,
    parse_time,
    read_item,
)

pytestmark = pytest.mark.anyio


# --- create ----------------------------------------------------------------------------------


async def test_create_answers_201_with_location_etag_and_the_item(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    me = (await client.get("/api/v1/users/me", headers=headers)).json()
    body = new_item(description="Brass, 40 cm", status="active", tags=["desk", "light"])

    response = await client.post(ITEMS, json=body, headers=headers)

    assert response.status_code == 201, response.text
    item = response.json()
    assert response.headers["location"] == f"http://testserver{item_url(item['id'])}"
    assert response.headers["etag"] == '"1"'
    assert item["owner_id"] == me["id"]
    assert item["title"] == "Desk lamp"
    assert item["description"] == "Brass, 40 cm"
    assert item["status"] == "active"
    assert item["price"] == "19.90"
    assert item["currency"] == "EUR"
    assert item["tags"] == ["desk", "light"]
    assert item["version"] == 1
    created_at, updated_at = parse_time(item["created_at"]), parse_time(item["updated_at"])
    assert timedelta(0) <= updated_at - created_at < timedelta(seconds=1)
    # The Location points at the item, which reads back the same.
    fetched = await client.get(response.headers["location"], headers=headers)
    assert fetched.status_code == 200
    assert fetched.json() == item


async def test_create_defaults(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers)
    assert item["description"] == ""
    assert item["status"] == "draft"
    assert item["tags"] == []


async def test_title_and_tags_are_trimmed_and_tags_keep_their_order(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers, title="  Lamp  ", tags=[" z ", "a", "m"])
    assert item["title"] == "Lamp"
    assert item["tags"] == ["z", "a", "m"]
    assert (await read_item(client, headers, item["id"]))["tags"] == ["z", "a", "m"]


async def test_limits_are_inclusive(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    tags = [f"tag-{n}" for n in range(20)]
    item = await create_item(client, headers, title="t" * 200, description="d" * 10_000, tags=tags)
    stored = await read_item(client, headers, item["id"])
    assert len(stored["title"]) == 200
    assert len(stored["description"]) == 10_000
    assert stored["tags"] == tags
    assert (await create_item(client, headers, tags=["x" * 32]))["tags"] == ["x" * 32]


@pytest.mark.parametrize(
    ("overrides", "pointer"),
    [
        ({"title": ""}, "#/title"),
        ({"title": "   "}, "#/title"),
        ({"title": "t" * 201}, "#/title"),
        ({"description": "d" * 10_001}, "#/description"),
        ({"status": "deleted"}, "#/status"),
        ({"tags": [f"tag-{n}" for n in range(21)]}, "#/tags"),
        ({"tags": ["same", "same"]}, "#/tags"),
        ({"tags": ["x" * 33]}, "#/tags/0"),
        ({"tags": [""]}, "#/tags/0"),
        ({"owner_id": str(uuid.uuid4())}, "#/owner_id"),
        ({"version": 7}, "#/version"),
        ({"id": str(uuid.uuid4())}, "#/id"),
    ],
)
async def test_invalid_items_are_refused(
    client: AsyncClient, overrides: dict[str, Any], pointer: str
) -> None:
    headers = await signed_up(client, ALICE)
    response = await client.post(ITEMS, json=new_item(**overrides), headers=headers)
    body = problem(response, 422, "validation_error")
    assert pointer in pointers(body)
    assert (await list_page(client, headers))["total"] == 0


@pytest.mark.parametrize("missing", ["title", "price", "currency"])
async def test_required_members(client: AsyncClient, missing: str) -> None:
    headers = await signed_up(client, ALICE)
    body = new_item()
    del body[missing]
    response = await client.post(ITEMS, json=body, headers=headers)
    assert f"#/{missing}" in pointers(problem(response, 422, "validation_error"))


async def test_anonymous_callers_are_refused(client: AsyncClient) -> None:
    response = await client.post(ITEMS, json=new_item())
    problem(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")
    problem(await client.get(ITEMS), 401, "not_authenticated")
    problem(await client.get(item_url(uuid.uuid4())), 401, "not_authenticated")
    url = item_url(uuid.uuid4())
    problem(await client.patch(url, json={"title": "x"}), 401, "not_authenticated")
    problem(await client.delete(url), 401, "not_authenticated")
    problem(await client.post(f"{url}/restore"), 401, "not_authenticated")
