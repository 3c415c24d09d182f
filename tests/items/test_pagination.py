"""The item list over the real app and databases: whose items, filters, sorting, offset and
cursor paging, `Link` headers, a bounded number of queries, and a 1 000-item cursor walk.
"""

import base64
import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient, Response
from sqlalchemy import event

from app.db.base import utcnow
from app.deps import resources_of
from app.items.models import Item
from app.items.schemas import MAX_OFFSET
from tests.harness import assert_problem as problem
from tests.identity import bearer, login, make_superuser, register, signed_up
from tests.items.helpers import (
    ADMIN,
    ALICE,
    BOB,
    ITEMS,
    create_item,
    ids,
    insert_items,
    item_url,
    list_page,
    parameters,
)

pytestmark = pytest.mark.anyio

LINK_NEXT = re.compile(r'^<([^>]+)>; rel="next"$')


async def user_id(client: AsyncClient, headers: dict[str, str]) -> str:
    response = await client.get("/api/v1/users/me", headers=headers)
    assert response.status_code == 200
    value: str = response.json()["id"]
    return value


def next_link(response: Response) -> str | None:
    """The target of the `Link: <...>; rel="next"` header, or None when there is none."""
    value = response.headers.get("link")
    if value is None:
        return None
    match = LINK_NEXT.match(value)
    assert match is not None, value
    return match.group(1)


def newest_first(items: list[Item]) -> list[str]:
    """The ids in the list's default order: created_at, then id, both descending."""
    return [
        str(item.id) for item in sorted(items, key=lambda i: (i.created_at, i.id), reverse=True)
    ]


def encoded(value: Any) -> str:
    """A cursor built by hand: base64 of any JSON (or bytes), as a client might forge one."""
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- whose items -----------------------------------------------------------------------------


async def test_the_list_shows_only_the_callers_items_newest_first(client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    bob = await signed_up(client, BOB)
    mine = [(await create_item(client, alice, title=f"a{n}"))["id"] for n in range(3)]
    theirs = [(await create_item(client, bob, title=f"b{n}"))["id"] for n in range(2)]

    response = await client.get(ITEMS, headers=alice)

    assert response.status_code == 200
    page = response.json()
    assert ids(page) == mine[::-1]
    assert (page["total"], page["limit"], page["offset"], page["next_cursor"]) == (3, 50, 0, None)
    assert "link" not in response.headers
    assert ids(await list_page(client, bob)) == theirs[::-1]


async def test_a_superuser_lists_everyones_items_or_one_owners(
    app: FastAPI, client: AsyncClient
) -> None:
    alice = await signed_up(client, ALICE)
    bob = await signed_up(client, BOB)
    await register(client, ADMIN)
    await make_superuser(app, ADMIN)
    admin = bearer(await login(client, ADMIN))
    alices = {(await create_item(client, alice))["id"] for _ in range(2)}
    bobs = {(await create_item(client, bob))["id"] for _ in range(3)}

    everyone = await list_page(client, admin)
    assert (set(ids(everyone)), everyone["total"]) == (alices | bobs, 5)
    only_bob = await list_page(client, admin, owner_id=await user_id(client, bob))
    assert (set(ids(only_bob)), only_bob["total"]) == (bobs, 3)
    nobody = await list_page(client, admin, owner_id=str(uuid.uuid4()))
    assert (nobody["items"], nobody["total"]) == ([], 0)


async def test_a_user_may_not_list_another_users_items(client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    bob = await signed_up(client, BOB)
    item = await create_item(client, alice)
    await create_item(client, bob)
    response = await client.get(
        ITEMS, params={"owner_id": await user_id(client, bob)}, headers=alice
    )
    problem(response, 403, "superuser_required")
    own = await list_page(client, alice, owner_id=await user_id(client, alice))
    assert ids(own) == [item["id"]]


async def test_deleted_items_are_not_listed_or_counted(client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    items = [(await create_item(client, alice))["id"] for _ in range(4)]
    for item_id in items[1:3]:
        assert (await client.delete(item_url(item_id), headers=alice)).status_code == 204
    page = await list_page(client, alice)
    assert (ids(page), page["total"]) == ([items[3], items[0]], 2)
    walked = await list_page(client, alice, limit=1, sort="created_at")
    assert ids(walked) == [items[0]]
    assert ids(await list_page(client, alice, cursor=walked["next_cursor"], sort="created_at")) == [
        items[3]
    ]


# --- parameters ------------------------------------------------------------------------------


async def test_default_limit_is_50_and_the_maximum_100(app: FastAPI, client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    await insert_items(app, await user_id(client, alice), count=120)
    page = await list_page(client, alice)
    assert (len(page["items"]), page["limit"], page["total"]) == (50, 50, 120)
    assert len((await list_page(client, alice, limit=100))["items"]) == 100


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"sort": "owner_id"}, "sort"),
        ({"sort": "created_at; DROP TABLE items"}, "sort"),
        ({"sort": "+price"}, "sort"),
        ({"status": "deleted"}, "status"),
        ({"colour": "red"}, "colour"),
        ({"owner": "me"}, "owner"),
        ({"created_after": "2026-01-01T00:00:00"}, "created_after"),  # no time zone
        ({"created_before": "yesterday"}, "created_before"),
        ({"owner_id": "not-a-uuid"}, "owner_id"),
        ({"q": ""}, "q"),
    ],
)
async def test_invalid_or_unknown_parameters_are_422(
    client: AsyncClient, params: dict[str, Any], parameter: str
) -> None:
    alice = await signed_up(client, ALICE)
    response = await client.get(ITEMS, params=params, headers=alice)
    assert parameter in parameters(problem(response, 422, "validation_error"))


async def test_deep_offsets_are_refused_in_favour_of_cursors(client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    await create_item(client, alice)
    deepest = await list_page(client, alice, offset=MAX_OFFSET)
    assert (deepest["items"], deepest["total"]) == ([], 1)
    for offset in (MAX_OFFSET + 1, 2**63):
        response = await client.get(ITEMS, params={"offset": offset}, headers=alice)
        assert "offset" in parameters(problem(response, 422, "validation_error"))


# --- filters ---------------------------------------------------------------------------------


async def test_filter_by_status_and_tag(client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    bob = await signed_up(client, BOB)
    draft = await create_item(client, alice, tags=["red", "big"])
    active = await create_item(client, alice, status="active", tags=["red"])
    archived = await create_item(client, alice, status="archived", tags=["blue"])
    await create_item(client, bob, status="active", tags=["red"])

    assert ids(await list_page(client, alice, status="active")) == [active["id"]]
    assert ids(await list_page(client, alice, status="archived")) == [archived["id"]]
    red = await list_page(client, alice, tag="red")
    assert (ids(red), red["total"]) == ([active["id"], draft["id"]], 2)
    assert ids(await list_page(client, alice, tag="red", status="draft")) == [draft["id"]]
    assert ids(await list_page(client, alice, tag="big")) == [draft["id"]]
    assert ids(await list_page(client, alice, tag="Red")) == []  # tags are exact
    assert ids(await list_page(client, alice, tag="none")) == []
    # Tags come with each listed item, in their order.
    assert [item["tags"] for item in red["items"]] == [["red"], ["red", "big"]]


async def test_q_finds_titles_containing_it_ignoring_case(client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    titles = ["Red Lamp", "lamp shade", "Table", "50% off", "50 percent", "a_b", "axb", "LAMPS"]
    created = {title: (await create_item(client, alice, title=title))["id"] for title in titles}

    def found(page: dict[str, Any]) -> set[str]:
        return {item["title"] for item in page["items"]}

    assert found(await list_page(client, alice, q="lamp")) == {"Red Lamp", "lamp shade", "LAMPS"}
    assert found(await list_page(client, alice, q="LaMp")) == {"Red Lamp", "lamp shade", "LAMPS"}
    assert (await list_page(client, alice, q="lamp"))["total"] == 3
    # LIKE wildcards in q are plain characters.
    assert found(await list_page(client, alice, q="50%")) == {"50% off"}
    assert found(await list_page(client, alice, q="a_b")) == {"a_b"}
    assert found(await list_page(client, alice, q="%")) == {"50% off"}
    assert found(await list_page(client, alice, q="nothing")) == set()
    assert len(created) == len(titles)


async def test_q_ignores_case_beyond_ascii(client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    item = await create_item(client, alice, title="Crème BRÛLÉE")
    assert ids(await list_page(client, alice, q="brûlée")) == [item["id"]]
    assert ids(await list_page(client, alice, q="CRÈME")) == [item["id"]]


async def test_created_after_and_before_are_exclusive_bounds(
    app: FastAPI, client: AsyncClient
) -> None:
    alice = await signed_up(client, ALICE)
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    t1, t2 = t0 + timedelta(hours=1), t0 + timedelta(hours=2)
    old, middle, new = newest_first(
        await insert_items(app, await user_id(client, alice), [t0, t1, t2])
    )[::-1]

    assert ids(await list_page(client, alice, created_after=z(t0))) == [new, middle]
    assert ids(await list_page(client, alice, created_before=z(t2))) == [middle, old]
    between = await list_page(client, alice, created_after=z(t0), created_before=z(t2))
    assert (ids(between), between["total"]) == ([middle], 1)
    # The same instant in another zone is the same bound.
    in_paris = (t0 + timedelta(minutes=30)).astimezone(timezone(timedelta(hours=2)))
    assert ids(await list_page(client, alice, created_after=in_paris.isoformat())) == [new, middle]
    assert ids(await list_page(client, alice, created_after=z(t2))) == []


@pytest.mark.parametrize(
    "bound",
    [
        {"created_after": "0001-01-01T00:00:00+01:00"},
        {"created_before": "9999-12-31T23:59:59-01:00"},
    ],
)
async def test_a_bound_outside_the_utc_range_is_422_not_500(
    client: AsyncClient, bound: dict[str, str]
) -> None:
    alice = await signed_up(client, ALICE)
    response = await client.get(ITEMS, params=bound, headers=alice)
    assert set(bound) <= parameters(problem(response, 422, "validation_error"))


# --- sorting ---------------------------------------------------------------------------------


async def test_sort_by_title_price_and_creation(client: AsyncClient) -> None:
    alice = await signed_up(client, ALICE)
    created = [
        await create_item(client, alice, title=title, price=price)
        for title, price in [("b", "10"), ("d", "9.5"), ("a", "100"), ("c", "0.25"), ("e", "10.00")]
    ]
    page_of = {
        sort: await list_page(client, alice, sort=sort)
        for sort in ("title", "-title", "price", "-price", "created_at", "-created_at")
    }

    def titles(sort: str) -> list[str]:
        return [item["title"] for item in page_of[sort]["items"]]

    assert titles(sort="title") == ["a", "b", "c", "d", "e"]
    assert titles(sort="-title") == ["e", "d", "c", "b", "a"]
    prices = [item["price"] for item in page_of["price"]["items"]]
    assert prices[0] == "0.25"
    assert prices[1] == "9.5"  # numerically, not as text: "9.5" < "10"
    assert sorted(prices[2:4]) == ["10", "10.00"]
    assert prices[4] == "100"
    # Equal prices fall back on the id, so the order is stable from page to page.
    equal = sorted(item["id"] for item in created if item["price"] in ("10", "10.00"))
    assert [item["id"] for item in page_of["price"]["items"][2:4]] == equal
    assert [item["price"] for item in page_of["-price"]["items"]][::-1] == prices
    assert titles(sort="created_at") == ["b", "d", "a", "c", "e"]
    assert titles(sort="-created_at") == ["e", "c", "a", "d", "b"]


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


# --- queries ---------------------------------------------------------------------------------


@contextmanager
def counted_statements(app: FastAPI) -> Iterator[list[str]]:
    """Collect every SQL statement the app's engine sends while the block runs."""
    statements: list[str] = []
    engine = resources_of(app).engine.sync_engine

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def test_listing_costs_the_same_queries_for_3_or_30_items(
    app: FastAPI, client: AsyncClient
) -> None:
    alice = await signed_up(client, ALICE)
    owner = await user_id(client, alice)
    await insert_items(app, owner, count=3, tags=["x", "y", "z"])
    with counted_statements(app) as few:
        small = await list_page(client, alice)
    await insert_items(app, owner, count=27, tags=["x", "y", "z"])
    with counted_statements(app) as many:
        large = await list_page(client, alice)

    assert len(small["items"]) == 3
    assert len(large["items"]) == 30
    assert all(item["tags"] == ["x", "y", "z"] for item in large["items"])
    assert len(many) == len(few), many
    assert sum("item_tags" in statement for statement in many) == 1


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
