"""Conditional item requests over the real app and databases: ETags and If-None-Match on
reads, If-Match (optional or required) on writes, and two writers racing with the same ETag.
"""

import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from asgi_lifespan import LifespanManager
from httpx2 import AsyncClient, Response
from sqlalchemy import delete, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.deps import resources_of
from app.items.models import Item
from app.main import create_app
from app.users.models import User
from tests.harness import assert_problem as problem
from tests.harness import client_for, make_settings, started
from tests.identity import signed_up
from tests.items.helpers import ALICE, MERGE_PATCH, create_item, item_url, read_item

pytestmark = pytest.mark.anyio


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


async def test_a_large_item_keeps_its_strong_etag_and_its_bytes(client: AsyncClient) -> None:
    """Over the compression threshold an item is still sent uncompressed: its strong ETag names
    those bytes, which `If-None-Match` and `If-Match` then compare against. A list (no ETag)
    is compressed."""
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers, description="words " * 1000)
    url = item_url(item["id"])
    gzip = {**headers, "Accept-Encoding": "gzip"}
    response = await client.get(url, headers=gzip)
    assert "content-encoding" not in response.headers
    assert response.headers["etag"] == '"1"'
    assert int(response.headers["content-length"]) > 6000
    assert response.json() == item
    not_modified = await client.get(url, headers={**gzip, "If-None-Match": '"1"'})
    assert (not_modified.status_code, not_modified.headers["etag"]) == (304, '"1"')
    changed = await client.patch(
        url,
        json={"title": "Renamed"},
        headers={**gzip, "If-Match": response.headers["etag"], **MERGE_PATCH},
    )
    assert changed.status_code == 200, changed.text
    listed = await client.get("/api/v1/items", headers=gzip)
    assert listed.headers["content-encoding"] == "gzip"


async def test_unknown_item_is_a_404_problem(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    missing = uuid.uuid4()
    body = problem(await client.get(item_url(missing), headers=headers), 404, "item_not_found")
    assert str(missing) in body["detail"]
    assert body["instance"] == item_url(missing)


async def test_a_malformed_id_is_a_422_problem(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    problem(await client.get(item_url("not-a-uuid"), headers=headers), 422, "validation_error")


# --- If-Match --------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Race:
    """The app as in production (the shared harness runs every request on one connection)."""

    client: AsyncClient
    engine: AsyncEngine
    app_name: str
    postgres: bool
    headers: dict[str, str]  # an account's, whose rows go after the test

    async def held_at(self, item_id: str, *sends: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `sends` at once while the item's row is locked, until each waits; then free it.

        PostgreSQL: the row lock holds each request back; SQLite: the write lock (BEGIN
        IMMEDIATE) does.
        """
        with anyio.fail_after(30):
            async with self.engine.connect() as locker:
                await locker.begin()
                row = select(Item.id).where(Item.id == uuid.UUID(item_id))
                await locker.execute(row.with_for_update())
                async with anyio.create_task_group() as group:
                    for send in sends:
                        group.start_soon(send)
                    if self.postgres:
                        await wait_until_blocked(self.engine, self.app_name, len(sends))
                    else:
                        await anyio.sleep(0.3)
                    await locker.rollback()


@asynccontextmanager
async def racing(live_database_url: str) -> AsyncIterator[Race]:
    app_name = f"items-race-{uuid.uuid4().hex[:8]}"
    app = create_app(make_settings(DATABASE_URL=live_database_url, APP_NAME=app_name))
    postgres = make_url(live_database_url).get_backend_name() == "postgresql"
    async with LifespanManager(app), client_for(app) as client:
        engine: AsyncEngine = resources_of(app).engine
        try:
            email = f"{LIVE_EMAIL_PREFIX}{uuid.uuid4().hex}@example.com"
            yield Race(client, engine, app_name, postgres, await signed_up(client, email))
        finally:
            async with engine.begin() as connection:
                # Items, tokens and keys go with their users (ON DELETE CASCADE).
                await connection.execute(
                    delete(User).where(User.email.like(f"{LIVE_EMAIL_PREFIX}%"))
                )


async def test_two_writers_with_the_same_etag_one_wins_and_the_other_gets_412(
    live_database_url: str,
) -> None:
    # Both PATCHes read version 1 and pass If-Match before either writes.
    async with racing(live_database_url) as race:
        client, headers = race.client, race.headers
        item = await create_item(client, headers)
        responses: dict[str, Response] = {}

        async def patch(title: str) -> None:
            responses[title] = await client.patch(
                item_url(item["id"]), json={"title": title}, headers={**headers, "If-Match": '"1"'}
            )

        await race.held_at(item["id"], lambda: patch("A"), lambda: patch("B"))
        statuses = {title: response.status_code for title, response in responses.items()}
        assert sorted(statuses.values()) == [200, 412], {t: r.text for t, r in responses.items()}
        winner = next(title for title, status in statuses.items() if status == 200)
        loser = next(title for title, status in statuses.items() if status != 200)
        problem(responses[loser], 412, "precondition_failed")
        stored = await read_item(client, headers, item["id"])
        assert (stored["title"], stored["version"]) == (winner, 2)


async def test_two_restores_at_once_both_succeed(live_database_url: str) -> None:
    """A restore sends no precondition: the one that comes second waits for the first, then
    finds the item live ("changes nothing"), instead of failing the version check with 412."""
    async with racing(live_database_url) as race:
        client, headers = race.client, race.headers
        item = await create_item(client, headers)
        assert (await client.delete(item_url(item["id"]), headers=headers)).status_code == 204
        responses: list[Response] = []

        async def restore() -> None:
            url = f"{item_url(item['id'])}/restore"
            responses.append(await client.post(url, headers=headers))

        await race.held_at(item["id"], restore, restore)
        assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
        assert {r.json()["version"] for r in responses} == {3}  # created, deleted, restored
