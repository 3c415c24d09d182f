"""Item endpoints over the real app and databases: create, read, change, delete, restore.

Validation and money, ETags and conditional requests, the read-through cache (memory and
Redis), scopes, and what another user may (not) see. Listing and paging: test_pagination.py.
"""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import anyio
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx2 import AsyncClient, Response
from sqlalchemy import delete, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.deps import resources_of
from app.items.models import Item
from app.main import create_app
from app.users.models import User
from tests.harness import assert_problem as problem
from tests.harness import client_for, make_settings, running
from tests.identity import bearer, login, make_superuser, register, signed_up
from tests.items.helpers import (
    ADMIN,
    ALICE,
    BOB,
    ITEMS,
    KEYS,
    MERGE_PATCH,
    PROBLEM,
    create_item,
    factory,
    ids,
    item_url,
    list_page,
    new_item,
    pointers,
    read_item,
)

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def started(
    settings: Settings, **overrides: Any
) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """Run an app on the test database with `overrides`, and a client for it."""
    app = create_app(make_settings(DATABASE_URL=settings.database.url, **overrides))
    async with running(app), client_for(app) as client:
        yield app, client


def parse_time(value: str) -> datetime:
    assert value.endswith("Z"), value  # RFC 3339 in UTC
    return datetime.fromisoformat(value)


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


# --- money -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "price",
    ["19.90", "0", "0.00", "12345678901234.5678", "0.0001", "100", "7.5000", "99999999999999"],
)
async def test_money_round_trips_exactly(app: FastAPI, client: AsyncClient, price: str) -> None:
    headers = await signed_up(client, ALICE)
    created = await create_item(client, headers, price=price, currency="USD")
    assert created["price"] == price
    assert (await read_item(client, headers, created["id"]))["price"] == price  # from the database
    assert (await list_page(client, headers))["items"][0]["price"] == price
    async with factory(app)() as session:
        stored = await session.get(Item, uuid.UUID(created["id"]))
        assert stored is not None
        assert stored.price == Decimal(price)
        assert str(stored.price) == price or f"{stored.price:f}" == price


async def test_a_patched_price_keeps_its_decimals(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers, price="19.90")
    response = await client.patch(item_url(item["id"]), json={"price": "5.5"}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["price"] == "5.5"
    assert (await read_item(client, headers, item["id"]))["price"] == "5.5"
    response = await client.patch(item_url(item["id"]), json={"price": "3.1400"}, headers=headers)
    assert (await read_item(client, headers, item["id"]))["price"] == "3.1400"


@pytest.mark.parametrize(
    "price",
    [
        "19.90001",  # five decimals
        "1.50000",  # five decimals, even if the last ones are zeros
        "0.000000",
        "-1",
        "-0.01",
        19.9,  # a JSON float
        1e2,
        "abc",
        "",
        "NaN",
        "Infinity",
        "123456789012345678.901",  # 21 digits
        "999999999999999",  # 15 integer digits: past the largest storable price
        None,
    ],
)
async def test_invalid_prices_are_refused(client: AsyncClient, price: Any) -> None:
    headers = await signed_up(client, ALICE)
    response = await client.post(ITEMS, json=new_item(price=price), headers=headers)
    assert "#/price" in pointers(problem(response, 422, "validation_error"))


async def test_a_price_with_trailing_zeros_beyond_4_decimals_is_refused_in_a_patch(
    client: AsyncClient,
) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers)
    response = await client.patch(item_url(item["id"]), json={"price": "2.00000"}, headers=headers)
    assert "#/price" in pointers(problem(response, 422, "validation_error"))
    assert await read_item(client, headers, item["id"]) == item


async def test_negative_zero_is_shown_as_zero(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    response = await client.post(ITEMS, json=new_item(price="-0"), headers=headers)
    if response.status_code == 422:
        assert "#/price" in pointers(problem(response, 422, "validation_error"))
        return
    assert response.status_code == 201, response.text
    assert response.json()["price"] == "0"
    assert (await read_item(client, headers, response.json()["id"]))["price"] == "0"


async def test_a_float_price_is_refused_in_a_patch_too(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers)
    response = await client.patch(item_url(item["id"]), json={"price": 19.9}, headers=headers)
    assert "#/price" in pointers(problem(response, 422, "validation_error"))
    assert (await read_item(client, headers, item["id"]))["price"] == "19.90"


@pytest.mark.parametrize("currency", ["ABC", "usd", "Eur", "US", "EURO", "", "XXX"])
async def test_unknown_currencies_are_refused(client: AsyncClient, currency: str) -> None:
    headers = await signed_up(client, ALICE)
    response = await client.post(ITEMS, json=new_item(currency=currency), headers=headers)
    assert "#/currency" in pointers(problem(response, 422, "validation_error"))


@pytest.mark.parametrize("currency", ["USD", "EUR", "JPY", "CHF", "XOF"])
async def test_iso_4217_currencies_are_accepted(client: AsyncClient, currency: str) -> None:
    headers = await signed_up(client, ALICE)
    assert (await create_item(client, headers, currency=currency))["currency"] == currency


async def test_the_price_is_a_string_in_the_schema(client: AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()["components"]["schemas"]
    assert schema["ItemRead"]["properties"]["price"]["type"] == "string"
    assert schema["ItemCreate"]["properties"]["price"]["type"] == "string"


# --- read and ETags --------------------------------------------------------------------------


async def test_read_returns_the_etag_and_if_none_match_answers_304(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers)
    url = item_url(item["id"])
    response = await client.get(url, headers=headers)
    etag = response.headers["etag"]
    assert etag == '"1"'

    for value in (etag, f'"x", {etag}', f"W/{etag}", "*"):
        not_modified = await client.get(url, headers={**headers, "If-None-Match": value})
        assert not_modified.status_code == 304, value
        assert not_modified.content == b""
        assert not_modified.headers["etag"] == etag

    modified = await client.get(url, headers={**headers, "If-None-Match": '"2"'})
    assert modified.status_code == 200
    assert modified.json() == item


async def test_unknown_item_is_a_404_problem(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    missing = uuid.uuid4()
    body = problem(await client.get(item_url(missing), headers=headers), 404, "item_not_found")
    assert str(missing) in body["detail"]
    assert body["instance"] == item_url(missing)


async def test_a_malformed_id_is_a_422_problem(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    problem(await client.get(item_url("not-a-uuid"), headers=headers), 422, "validation_error")


# --- merge patch -----------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["application/merge-patch+json", "application/json"])
async def test_patch_changes_only_the_members_sent(client: AsyncClient, content_type: str) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers, description="old", tags=["a", "b"])
    response = await client.patch(
        item_url(item["id"]),
        content=b'{"title": "Floor lamp", "status": "archived"}',
        headers={**headers, "Content-Type": content_type},
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert response.headers["etag"] == '"2"'
    assert patched["version"] == 2
    assert patched["title"] == "Floor lamp"
    assert patched["status"] == "archived"
    assert patched["description"] == "old"
    assert patched["tags"] == ["a", "b"]
    assert patched["price"] == "19.90"
    assert patched["created_at"] == item["created_at"]
    assert parse_time(patched["updated_at"]) > parse_time(item["updated_at"])
    assert await read_item(client, headers, item["id"]) == patched


async def test_null_removes_description_and_tags(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers, description="old", tags=["a", "b"])
    response = await client.patch(
        item_url(item["id"]),
        json={"description": None, "tags": None},
        headers=MERGE_PATCH | headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["description"] == ""
    assert response.json()["tags"] == []
    stored = await read_item(client, headers, item["id"])
    assert (stored["description"], stored["tags"], stored["title"]) == ("", [], "Desk lamp")


@pytest.mark.parametrize("member", ["title", "status", "price", "currency"])
async def test_null_cannot_remove_a_required_member(client: AsyncClient, member: str) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers)
    response = await client.patch(
        item_url(item["id"]), json={member: None}, headers=MERGE_PATCH | headers
    )
    assert f"#/{member}" in pointers(problem(response, 422, "validation_error"))
    assert await read_item(client, headers, item["id"]) == item


@pytest.mark.parametrize(
    ("patch", "pointer"),
    [
        ({"title": ""}, "#/title"),
        ({"price": "-1"}, "#/price"),
        ({"price": "1.00001"}, "#/price"),
        ({"currency": "usd"}, "#/currency"),
        ({"tags": ["a", "a"]}, "#/tags"),
        ({"owner_id": str(uuid.uuid4())}, "#/owner_id"),
        ({"version": 9}, "#/version"),
        ({"deleted_at": None}, "#/deleted_at"),
    ],
)
async def test_invalid_patches_are_refused(
    client: AsyncClient, patch: dict[str, Any], pointer: str
) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers)
    response = await client.patch(item_url(item["id"]), json=patch, headers=MERGE_PATCH | headers)
    assert pointer in pointers(problem(response, 422, "validation_error"))
    assert await read_item(client, headers, item["id"]) == item


@pytest.mark.parametrize("document", [b"[]", b"null", b'"title"', b"{", b""])
async def test_a_merge_patch_must_be_a_json_object(client: AsyncClient, document: bytes) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers)
    response = await client.patch(
        item_url(item["id"]), content=document, headers=MERGE_PATCH | headers
    )
    problem(response, 422, "validation_error")
    assert await read_item(client, headers, item["id"]) == item


async def test_a_json_patch_document_is_not_a_merge_patch(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers)
    response = await client.patch(
        item_url(item["id"]),
        content=b'[{"op": "replace", "path": "/title", "value": "x"}]',
        headers={**headers, "Content-Type": "application/json-patch+json"},
    )
    assert response.status_code == 415
    assert response.headers["content-type"] == PROBLEM
    assert await read_item(client, headers, item["id"]) == item


async def test_changing_only_the_tags_is_a_new_version(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers, tags=["a"])
    url = item_url(item["id"])

    response = await client.patch(url, json={"tags": ["a", "b"]}, headers=MERGE_PATCH | headers)

    assert response.status_code == 200, response.text
    assert response.json()["tags"] == ["a", "b"]
    # A change without a new version would let a client keep its stale copy (304) and let a
    # writer holding the old ETag overwrite the new tags (If-Match would still pass).
    assert response.json()["version"] == 2
    assert response.headers["etag"] == '"2"'
    assert parse_time(response.json()["updated_at"]) > parse_time(item["updated_at"])
    revalidated = await client.get(url, headers={**headers, "If-None-Match": item_etag(item)})
    assert revalidated.status_code == 200
    assert revalidated.json()["tags"] == ["a", "b"]
    stale = await client.patch(
        url, json={"tags": []}, headers={**headers, **MERGE_PATCH, "If-Match": item_etag(item)}
    )
    problem(stale, 412, "precondition_failed")


async def test_reordering_tags_is_kept(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers, tags=["a", "b", "c"])
    response = await client.patch(
        item_url(item["id"]), json={"tags": ["c", "a", "b"]}, headers=MERGE_PATCH | headers
    )
    assert response.status_code == 200, response.text
    assert (await read_item(client, headers, item["id"]))["tags"] == ["c", "a", "b"]


async def test_every_change_is_a_new_version_and_an_empty_patch_is_none(
    client: AsyncClient,
) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers)
    url = item_url(item["id"])
    versions = []
    for patch in ({"title": "one"}, {"price": "1"}, {"description": "x"}, {"currency": "USD"}):
        response = await client.patch(url, json=patch, headers=MERGE_PATCH | headers)
        assert response.status_code == 200, response.text
        versions.append(response.json()["version"])
    assert versions == [2, 3, 4, 5]
    unchanged = await client.patch(url, json={}, headers=MERGE_PATCH | headers)
    assert unchanged.status_code == 200
    assert unchanged.json()["version"] == 5
    assert unchanged.headers["etag"] == '"5"'


# --- If-Match --------------------------------------------------------------------------------


def item_etag(item: dict[str, Any]) -> str:
    return f'"{item["version"]}"'


async def test_patch_with_a_stale_etag_is_412_and_changes_nothing(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers)
    url = item_url(item["id"])
    first = await client.patch(
        url, json={"title": "first"}, headers={**headers, **MERGE_PATCH, "If-Match": '"1"'}
    )
    assert first.status_code == 200, first.text

    lost = await client.patch(
        url, json={"title": "lost"}, headers={**headers, **MERGE_PATCH, "If-Match": '"1"'}
    )

    problem(lost, 412, "precondition_failed")
    stored = await read_item(client, headers, item["id"])
    assert (stored["title"], stored["version"]) == ("first", 2)


@pytest.mark.parametrize(
    ("if_match", "status"),
    [('"1"', 200), ("*", 200), ('"7", "1"', 200), ('W/"1"', 412), ('"2"', 412), ("1", 412)],
)
async def test_if_match_uses_strong_comparison(
    client: AsyncClient, if_match: str, status: int
) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers)
    response = await client.patch(
        item_url(item["id"]), json={"title": "x"}, headers={**headers, "If-Match": if_match}
    )
    assert response.status_code == status, response.text


async def test_delete_with_a_stale_etag_is_412_and_deletes_nothing(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers)
    url = item_url(item["id"])
    await client.patch(url, json={"title": "changed"}, headers=headers)
    problem(
        await client.delete(url, headers={**headers, "If-Match": '"1"'}), 412, "precondition_failed"
    )
    assert (await read_item(client, headers, item["id"]))["title"] == "changed"
    assert (await client.delete(url, headers={**headers, "If-Match": '"2"'})).status_code == 204


async def test_if_match_is_optional_by_default(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers)
    url = item_url(item["id"])
    assert (await client.patch(url, json={"title": "x"}, headers=headers)).status_code == 200
    assert (await client.delete(url, headers=headers)).status_code == 204


async def test_require_if_match_makes_it_428_when_missing(settings: Settings) -> None:
    async with started(settings, REQUIRE_IF_MATCH=True) as (_, client):
        headers = await signed_up(client, ALICE)
        item = await create_item(client, headers)
        url = item_url(item["id"])

        problem(
            await client.patch(url, json={"title": "x"}, headers=headers),
            428,
            "precondition_required",
        )
        problem(await client.delete(url, headers=headers), 428, "precondition_required")
        assert (await read_item(client, headers, item["id"]))["title"] == "Desk lamp"

        with_etag = {**headers, "If-Match": '"1"'}
        problem(
            await client.patch(url, json={"title": "x"}, headers={**headers, "If-Match": '"9"'}),
            412,
            "precondition_failed",
        )
        assert (await client.patch(url, json={"title": "x"}, headers=with_etag)).status_code == 200
        assert (await client.delete(url, headers={**headers, "If-Match": '"2"'})).status_code == 204


# --- soft delete and restore -----------------------------------------------------------------


async def test_delete_is_soft_and_hides_the_item_from_every_read(
    app: FastAPI, client: AsyncClient
) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers, tags=["gone"])
    kept = await create_item(client, headers, title="kept", tags=["gone"])
    url = item_url(item["id"])

    response = await client.delete(url, headers=headers)

    assert response.status_code == 204
    assert response.content == b""
    problem(await client.get(url, headers=headers), 404, "item_not_found")
    page = await list_page(client, headers)
    assert (ids(page), page["total"]) == ([kept["id"]], 1)
    assert ids(await list_page(client, headers, tag="gone")) == [kept["id"]]
    problem(await client.patch(url, json={"title": "x"}, headers=headers), 404, "item_not_found")
    problem(await client.delete(url, headers=headers), 404, "item_not_found")
    # The row is kept, marked deleted, for restore.
    async with factory(app)() as session:
        row = await session.get(Item, uuid.UUID(item["id"]))
        assert row is not None
        assert row.deleted_at is not None


async def test_restore_brings_a_deleted_item_back(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers, tags=["t"])
    url = item_url(item["id"])
    assert (await client.delete(url, headers=headers)).status_code == 204

    response = await client.post(f"{url}/restore", headers=headers)

    assert response.status_code == 200, response.text
    restored = response.json()
    assert restored["version"] == 3  # created, deleted, restored
    assert response.headers["etag"] == '"3"'
    assert (restored["title"], restored["tags"], restored["price"]) == ("Desk lamp", ["t"], "19.90")
    assert await read_item(client, headers, item["id"]) == restored
    assert ids(await list_page(client, headers)) == [item["id"]]
    # Restoring a live item changes nothing.
    again = await client.post(f"{url}/restore", headers=headers)
    assert again.status_code == 200
    assert again.json() == restored


async def test_restore_of_an_unknown_item_is_404(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    response = await client.post(f"{item_url(uuid.uuid4())}/restore", headers=headers)
    problem(response, 404, "item_not_found")


# --- another user ----------------------------------------------------------------------------


async def test_another_user_cannot_read_change_or_learn_of_an_item(client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    bob = await signed_up(client, BOB)
    item = await create_item(client, alice, title="Secret plan", tags=["secret"])
    url = item_url(item["id"])
    etag = item_etag(item)
    unknown_id = str(uuid.uuid4())

    # The answer is the one for an id that does not exist: nothing tells the two apart.
    hidden = problem(await client.get(url, headers=bob), 404, "item_not_found")
    missing = problem(await client.get(item_url(unknown_id), headers=bob), 404, "item_not_found")
    for body, item_id in ((hidden, item["id"]), (missing, unknown_id)):
        for member in ("detail", "instance"):
            body[member] = body[member].replace(item_id, "<id>")
        del body["request_id"]
    assert hidden == missing
    problem(await client.get(url, headers={**bob, "If-None-Match": etag}), 404, "item_not_found")
    problem(await client.patch(url, json={"title": "mine"}, headers=bob), 404, "item_not_found")
    problem(
        await client.patch(url, json={"title": "mine"}, headers={**bob, "If-Match": etag}),
        404,
        "item_not_found",
    )
    problem(await client.delete(url, headers=bob), 404, "item_not_found")
    problem(await client.post(f"{url}/restore", headers=bob), 404, "item_not_found")
    for params in ({}, {"q": "secret"}, {"tag": "secret"}, {"status": "draft"}):
        page = await list_page(client, bob, **params)
        assert (page["items"], page["total"]) == ([], 0)

    assert await read_item(client, alice, item["id"]) == item  # untouched


async def test_another_user_cannot_restore_a_deleted_item(client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    bob = await signed_up(client, BOB)
    item = await create_item(client, alice)
    url = item_url(item["id"])
    assert (await client.delete(url, headers=alice)).status_code == 204
    problem(await client.post(f"{url}/restore", headers=bob), 404, "item_not_found")
    problem(await client.get(url, headers=alice), 404, "item_not_found")


async def test_a_superuser_may_read_and_change_any_item(app: FastAPI, client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    await register(client, ADMIN)
    await make_superuser(app, ADMIN)
    admin = bearer(await login(client, ADMIN))
    item = await create_item(client, alice)
    url = item_url(item["id"])
    assert (await read_item(client, admin, item["id"]))["owner_id"] == item["owner_id"]
    patched = await client.patch(url, json={"status": "active"}, headers=admin)
    assert patched.status_code == 200
    assert patched.json()["owner_id"] == item["owner_id"]
    assert (await read_item(client, alice, item["id"]))["status"] == "active"


# --- scopes ----------------------------------------------------------------------------------


async def api_key_headers(
    client: AsyncClient, headers: dict[str, str], *scopes: str
) -> dict[str, str]:
    response = await client.post(
        KEYS, json={"name": "bot", "scopes": list(scopes)}, headers=headers
    )
    assert response.status_code == 201, response.text
    return {"X-API-Key": response.json()["key"]}


async def test_a_read_only_key_can_read_but_not_write(client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    item = await create_item(client, alice)
    url = item_url(item["id"])
    reader = await api_key_headers(client, alice, "items:read")

    assert (await read_item(client, reader, item["id"])) == item
    assert ids(await list_page(client, reader)) == [item["id"]]
    problem(await client.post(ITEMS, json=new_item(), headers=reader), 403, "insufficient_scope")
    problem(await client.patch(url, json={"title": "x"}, headers=reader), 403, "insufficient_scope")
    problem(await client.delete(url, headers=reader), 403, "insufficient_scope")
    problem(await client.post(f"{url}/restore", headers=reader), 403, "insufficient_scope")
    assert await read_item(client, alice, item["id"]) == item
    assert (await list_page(client, alice))["total"] == 1


async def test_a_write_only_key_can_write_but_not_read(client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    writer = await api_key_headers(client, alice, "items:write")
    item = await create_item(client, writer)
    problem(await client.get(item_url(item["id"]), headers=writer), 403, "insufficient_scope")
    problem(await client.get(ITEMS, headers=writer), 403, "insufficient_scope")
    assert (await read_item(client, alice, item["id"]))["title"] == "Desk lamp"


async def test_a_key_without_item_scopes_can_do_nothing(client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    item = await create_item(client, alice)
    other = await api_key_headers(client, alice, "users:read")
    problem(await client.get(item_url(item["id"]), headers=other), 403, "insufficient_scope")
    problem(await client.post(ITEMS, json=new_item(), headers=other), 403, "insufficient_scope")


# --- the read-through cache ------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
async def cached_app(
    request: pytest.FixtureRequest, settings: Settings
) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """An app with the memory cache or, with its own key prefix, the Redis cache."""
    if request.param == "memory":
        async with started(settings) as started_app:
            assert resources_of(started_app[0]).redis is None
            yield started_app
        return
    redis_url = request.getfixturevalue("redis_url_or_skip")
    app_name = f"items-test-{uuid.uuid4().hex[:12]}"
    async with started(settings, REDIS_URL=redis_url, APP_NAME=app_name) as started_app:
        redis = resources_of(started_app[0]).redis
        assert redis is not None
        try:
            yield started_app
        finally:
            keys = [key async for key in redis.scan_iter(match=f"cache:{app_name}:*")]
            if keys:
                await redis.delete(*keys)


async def cached_copy(app: FastAPI, item_id: str) -> bytes | None:
    value: bytes | None = await resources_of(app).cache.get(f"items:{item_id}")
    return value


async def test_a_read_is_cached_and_every_write_invalidates_it(
    cached_app: tuple[FastAPI, AsyncClient],
) -> None:
    app, client = cached_app
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers, tags=["a"])
    item_id = item["id"]
    url = item_url(item_id)

    first = await read_item(client, headers, item_id)
    assert await cached_copy(app, item_id) is not None
    # Read-through: a change behind the API's back is not seen while the copy is cached.
    async with factory(app)() as session:
        await session.execute(
            update(Item).where(Item.id == uuid.UUID(item_id)).values(title="behind the back")
        )
        await session.commit()
    assert await read_item(client, headers, item_id) == first

    patched = await client.patch(url, json={"title": "patched"}, headers=headers)
    assert patched.status_code == 200
    assert await read_item(client, headers, item_id) == patched.json()

    assert (await client.delete(url, headers=headers)).status_code == 204
    problem(await client.get(url, headers=headers), 404, "item_not_found")
    assert await cached_copy(app, item_id) is None  # a 404 is not cached

    restored = await client.post(f"{url}/restore", headers=headers)
    assert restored.status_code == 200
    assert await read_item(client, headers, item_id) == restored.json()
    assert (await read_item(client, headers, item_id))["version"] == 4


async def test_a_cached_read_is_the_same_as_an_uncached_one(
    cached_app: tuple[FastAPI, AsyncClient],
) -> None:
    app, client = cached_app
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers, price="12345678901234.5678", tags=["x", "y"])
    uncached = await client.get(item_url(item["id"]), headers=headers)
    assert await cached_copy(app, item["id"]) is not None
    cached = await client.get(item_url(item["id"]), headers=headers)
    assert cached.content == uncached.content
    assert cached.headers["etag"] == uncached.headers["etag"]
    revalidated = await client.get(
        item_url(item["id"]), headers={**headers, "If-None-Match": uncached.headers["etag"]}
    )
    assert revalidated.status_code == 304


async def test_a_cached_item_is_still_hidden_from_another_user(
    cached_app: tuple[FastAPI, AsyncClient],
) -> None:
    app, client = cached_app
    alice = await signed_up(client, ALICE)
    bob = await signed_up(client, BOB)
    item = await create_item(client, alice)
    url = item_url(item["id"])
    await read_item(client, alice, item["id"])
    assert await cached_copy(app, item["id"]) is not None

    problem(await client.get(url, headers=bob), 404, "item_not_found")
    problem(
        await client.get(url, headers={**bob, "If-None-Match": item_etag(item)}),
        404,
        "item_not_found",
    )
    # Bob's miss did not replace the owner's copy or evict it.
    assert await read_item(client, alice, item["id"]) == item


async def test_another_users_read_does_not_fill_the_cache(
    cached_app: tuple[FastAPI, AsyncClient],
) -> None:
    app, client = cached_app
    alice = await signed_up(client, ALICE)
    bob = await signed_up(client, BOB)
    item = await create_item(client, alice)
    problem(await client.get(item_url(item["id"]), headers=bob), 404, "item_not_found")
    assert await cached_copy(app, item["id"]) is None


# --- two writers at once (separate connections, real commits) -------------------------------

LIVE_EMAIL_PREFIX = "items-live-"


async def wait_until_blocked(engine: AsyncEngine, app_name: str, count: int) -> None:
    """Wait until `count` of the app's PostgreSQL connections wait for a lock."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = :name AND wait_event_type = 'Lock'"
    )
    async with engine.connect() as watcher:
        while True:
            waiting = await watcher.scalar(query, {"name": app_name})
            await watcher.rollback()  # a fresh snapshot of pg_stat_activity each time
            if waiting == count:
                return
            await anyio.sleep(0.01)


async def test_two_writers_with_the_same_etag_one_wins_and_the_other_gets_412(
    live_database_url: str,
) -> None:
    # The shared harness runs every request on one connection: this race needs the app as in
    # production. Both PATCHes read version 1 and pass If-Match before either writes.
    app_name = f"items-race-{uuid.uuid4().hex[:8]}"
    app = create_app(make_settings(DATABASE_URL=live_database_url, APP_NAME=app_name))
    postgres = make_url(live_database_url).get_backend_name() == "postgresql"
    async with LifespanManager(app), client_for(app) as client:
        engine: AsyncEngine = resources_of(app).engine
        try:
            headers = await signed_up(client, f"{LIVE_EMAIL_PREFIX}{uuid.uuid4().hex}@example.com")
            item = await create_item(client, headers)
            responses: dict[str, Response] = {}

            async def patch(title: str) -> None:
                responses[title] = await client.patch(
                    item_url(item["id"]),
                    json={"title": title},
                    headers={**headers, "If-Match": '"1"'},
                )

            with anyio.fail_after(30):
                async with engine.connect() as locker:
                    # PostgreSQL: a row lock holds both UPDATEs back after their reads.
                    # SQLite: the write lock holds both requests back (BEGIN IMMEDIATE).
                    await locker.begin()
                    row = select(Item.id).where(Item.id == uuid.UUID(item["id"]))
                    await locker.execute(row.with_for_update())
                    async with anyio.create_task_group() as group:
                        group.start_soon(patch, "A")
                        group.start_soon(patch, "B")
                        if postgres:
                            await wait_until_blocked(engine, app_name, 2)
                        else:
                            await anyio.sleep(0.3)
                        await locker.rollback()

            statuses = {title: response.status_code for title, response in responses.items()}
            assert sorted(statuses.values()) == [200, 412], {
                t: r.text for t, r in responses.items()
            }
            winner = next(title for title, status in statuses.items() if status == 200)
            loser = next(title for title, status in statuses.items() if status != 200)
            problem(responses[loser], 412, "precondition_failed")
            stored = await read_item(client, headers, item["id"])
            assert (stored["title"], stored["version"]) == (winner, 2)
        finally:
            async with engine.begin() as connection:
                # Items, tokens and keys go with their users (ON DELETE CASCADE).
                await connection.execute(
                    delete(User).where(User.email.like(f"{LIVE_EMAIL_PREFIX}%"))
                )
