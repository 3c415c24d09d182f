"""The item list over the real app and databases: whose items, parameters, filters,
sorting, and a bounded number of queries. Paging through it: test_router_paging.py.
"""

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient

from app.items.schemas import MAX_OFFSET
from tests.harness import assert_problem as problem
from tests.harness import counted_statements
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
    newest_first,
    parameters,
    user_id,
)

pytestmark = pytest.mark.anyio


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


@pytest.mark.parametrize(
    "title",
    ["ΚΑΦΕΣ", "İSTANBUL", "καφές ΣΟΦΙΑΣ", "a/b_c%d", "ǅemal"],
    ids=["final-sigma", "dotted-capital-i", "mixed-case-greek", "escapes", "titlecase-letter"],
)
async def test_q_finds_a_title_by_its_own_text(client: AsyncClient, title: str) -> None:
    """Both sides are lowered by the database: Python lowers Σ at a word's end, and İ,
    otherwise than PostgreSQL does, so such a title did not find itself there."""
    alice = await signed_up(client, ALICE)
    item = await create_item(client, alice, title=title)
    for q in (title, title[1:-1]):
        assert ids(await list_page(client, alice, q=q)) == [item["id"]], q


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


# --- queries ---------------------------------------------------------------------------------


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
