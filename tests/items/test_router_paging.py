"""Paging through the item list over the real app and databases: offsets, cursors (forged
ones refused), `Link` headers, and a 1 000-item cursor walk while items are added.
"""

import base64
import json
import re
import uuid
from datetime import timedelta
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient, Response

from app.db.base import utcnow
from tests.harness import assert_problem as problem
from tests.identity import signed_up
from tests.items.helpers import (
    ALICE,
    BOB,
    ITEMS,
    create_item,
    ids,
    insert_items,
    list_page,
    newest_first,
    user_id,
)

pytestmark = pytest.mark.anyio

LINK_NEXT = re.compile(r'^<([^>]+)>; rel="next"$')


def next_link(response: Response) -> str | None:
    """The target of the `Link: <...>; rel="next"` header, or None when there is none."""
    value = response.headers.get("link")
    if value is None:
        return None
    match = LINK_NEXT.match(value)
    assert match is not None, value
    return match.group(1)


def encoded(value: Any) -> str:
    """A cursor built by hand: base64 of any JSON (or bytes), as a client might forge one."""
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- offset paging ---------------------------------------------------------------------------


async def test_offset_pages_carry_the_total_and_a_next_link(client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    for title in "abcde":
        await create_item(client, alice, title=title)

    seen: list[str] = []
    url: str | None = f"{ITEMS}?sort=title&limit=2"
    while url is not None:
        response = await client.get(url, headers=alice)
        assert response.status_code == 200, response.text
        page = response.json()
        assert (page["total"], page["limit"], page["next_cursor"]) == (5, 2, None)
        seen += [item["title"] for item in page["items"]]
        url = next_link(response)
        if url is not None:
            assert "sort=title" in url
    assert seen == list("abcde")

    last = await client.get(ITEMS, params={"sort": "title", "limit": 2, "offset": 4}, headers=alice)
    assert [item["title"] for item in last.json()["items"]] == ["e"]
    assert last.json()["offset"] == 4
    assert "link" not in last.headers
    beyond = await list_page(client, alice, offset=10)
    assert (beyond["items"], beyond["total"]) == ([], 5)


# --- cursor paging ---------------------------------------------------------------------------


@pytest.mark.parametrize("sort", ["-created_at", "created_at"])
async def test_cursor_pages_follow_the_link_through_ties(
    app: FastAPI, client: AsyncClient, sort: str
) -> None:
    alice = await signed_up(client, ALICE)
    # Ten items created in the same microsecond: only the id orders them.
    same_time = utcnow() - timedelta(minutes=5)
    items = await insert_items(app, await user_id(client, alice), [same_time] * 10)
    expected = newest_first(items)
    if sort == "created_at":
        expected.reverse()

    walked: list[str] = []
    url: str | None = f"{ITEMS}?limit=3&sort={sort}"
    pages = 0
    while url is not None:
        response = await client.get(url, headers=alice)
        assert response.status_code == 200, response.text
        page = response.json()
        walked += ids(page)
        pages += 1
        url = next_link(response)
        assert (url is None) == (page["next_cursor"] is None)
        if pages > 1:
            assert (page["total"], page["offset"]) == (None, None)
    assert pages == 4
    assert walked == expected


async def test_a_cursor_walk_upwards_sees_items_added_meanwhile(
    app: FastAPI, client: AsyncClient
) -> None:
    alice = await signed_up(client, ALICE)
    existing = newest_first(await insert_items(app, await user_id(client, alice), count=7))[::-1]
    added: list[str] = []
    walked: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, "sort": "created_at"}
        if cursor is not None:
            params["cursor"] = cursor
        page = await list_page(client, alice, **params)
        walked += ids(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
        if len(added) < 2:
            added.append((await create_item(client, alice))["id"])
    assert walked == existing + added


async def test_a_cursor_only_fits_the_created_at_sorts(client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    for _ in range(3):
        await create_item(client, alice)
    cursor = (await list_page(client, alice, limit=1))["next_cursor"]
    assert isinstance(cursor, str)
    for sort in ("title", "-title", "price", "-price"):
        response = await client.get(ITEMS, params={"cursor": cursor, "sort": sort}, headers=alice)
        problem(response, 422, "invalid_cursor")
    assert len((await list_page(client, alice, cursor=cursor, sort="-created_at"))["items"]) == 2


FORGED_CURSORS = {
    "not base64": "garbage",
    "not base64 at all": "!!!!",
    "not json": encoded(b"not json"),
    "not utf-8": encoded(b"\xff\xfe\x00"),
    "three members": encoded([1, 2, 3]),
    "a string": encoded("ab"),
    "a number": encoded(12),
    "nulls": encoded([None, None]),
    "an object": encoded({"created_at": "2026-01-01T00:00:00+00:00", "id": str(uuid.UUID(int=1))}),
    "naive time": encoded(["2026-01-01T00:00:00", str(uuid.UUID(int=1))]),
    "not a time": encoded(["yesterday", str(uuid.UUID(int=1))]),
    "not a uuid": encoded(["2026-01-01T00:00:00+00:00", "not-a-uuid"]),
    "id a number": encoded(["2026-01-01T00:00:00+00:00", 5]),
    "id a list": encoded(["2026-01-01T00:00:00+00:00", [1]]),
    "before year 1 in UTC": encoded(["0001-01-01T00:00:00+01:00", str(uuid.UUID(int=1))]),
    "after 9999 in UTC": encoded(["9999-12-31T23:59:59-01:00", str(uuid.UUID(int=1))]),
}


@pytest.mark.parametrize("cursor", FORGED_CURSORS.values(), ids=FORGED_CURSORS.keys())
async def test_a_forged_cursor_is_422_invalid_cursor(client: AsyncClient, cursor: str) -> None:
    alice = await signed_up(client, ALICE)
    await create_item(client, alice)
    response = await client.get(ITEMS, params={"cursor": cursor}, headers=alice)
    problem(response, 422, "invalid_cursor")


async def test_a_cursor_does_not_reach_other_users_items(client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    bob = await signed_up(client, BOB)
    older = await create_item(client, alice)
    for _ in range(3):
        await create_item(client, bob)
    await create_item(client, alice)
    bobs_cursor = (await list_page(client, bob, limit=1))["next_cursor"]
    # Bob's cursor is only a position: used by Alice, it pages through Alice's items.
    page = await list_page(client, alice, cursor=bobs_cursor)
    assert (ids(page), page["next_cursor"]) == ([older["id"]], None)


# --- the 1 000-item walk ---------------------------------------------------------------------


async def test_a_cursor_walks_1000_items_exactly_once_while_items_are_added(
    app: FastAPI, client: AsyncClient
) -> None:
    alice = await signed_up(client, ALICE)
    bob = await signed_up(client, BOB)
    base = utcnow() - timedelta(hours=1)
    # Ten items per timestamp: pages end in the middle of ties, which the id must break.
    existing = await insert_items(
        app,
        await user_id(client, alice),
        [base + timedelta(milliseconds=n // 10) for n in range(1000)],
    )
    expected = newest_first(existing)
    await insert_items(app, await user_id(client, bob), [base] * 20)  # not Alice's

    added: list[str] = []
    walked: list[str] = []
    page_done, page_done_rx = anyio.create_memory_object_stream[str | None]()
    may_go_on, may_go_on_rx = anyio.create_memory_object_stream[None]()

    async def writer() -> None:
        # The test app shares one database connection between requests, so the writer's
        # requests take turns with the reader's: one burst of creates after every page.
        async with page_done_rx, may_go_on:
            async for cursor in page_done_rx:
                if cursor is None:
                    return
                added.extend(
                    [(await create_item(client, alice, title="new"))["id"] for _ in range(3)]
                )
                await may_go_on.send(None)

    async def reader() -> None:
        async with page_done, may_go_on_rx:
            cursor: str | None = None
            while True:
                params: dict[str, Any] = {"limit": 100}
                if cursor is not None:
                    params["cursor"] = cursor
                page = await list_page(client, alice, **params)
                walked.extend(ids(page))
                cursor = page["next_cursor"]
                await page_done.send(cursor)
                if cursor is None:
                    return
                await may_go_on_rx.receive()

    async with anyio.create_task_group() as group:
        group.start_soon(writer)
        group.start_soon(reader)

    assert len(added) == 27  # nine pages had a next one
    assert len(walked) == len(set(walked)) == 1000
    assert walked == expected
    # The new items are newer than every cursor position: a fresh first page starts with them.
    first = await list_page(client, alice, limit=len(added))
    assert set(ids(first)) == set(added)
    assert first["total"] == 1000 + len(added)
