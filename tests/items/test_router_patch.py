"""Changing items with JSON Merge Patch over the real app and databases: members sent, null,
invalid patches, and a new version for every change.
"""

import uuid
from typing import Any

import pytest
from httpx2 import AsyncClient

from tests.harness import PROBLEM, pointers
from tests.harness import assert_problem as problem
from tests.identity import signed_up
from tests.items.helpers import (
    ALICE,
    MERGE_PATCH,
    create_item,
    item_etag,
    item_url,
    parse_time,
    read_item,
)

pytestmark = pytest.mark.anyio


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


@pytest.mark.parametrize(
    ("document", "status", "code"),
    [
        (b"[]", 422, "validation_error"),
        (b"null", 422, "validation_error"),
        (b'"title"', 422, "validation_error"),
        (b"", 422, "validation_error"),
        (b"{", 400, "malformed_body"),  # not JSON at all: every malformed body is one 400
    ],
)
async def test_a_merge_patch_must_be_a_json_object(
    client: AsyncClient, document: bytes, status: int, code: str
) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers)
    response = await client.patch(
        item_url(item["id"]), content=document, headers=MERGE_PATCH | headers
    )
    problem(response, status, code)
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
