"""The expand/contract example (docs/migrations.md): the previous release runs on the new schema.

The app as it is stands for release N-1: its models know nothing of `items.slug`. After the
expand migration its whole item API still works; after the contract migration its inserts
fail, which is why the contract ships only once no N-1 process runs.
"""

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from asgi_lifespan import LifespanManager
from httpx2 import AsyncClient
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.main import create_app
from tests.harness import client_for, make_settings
from tests.identity import signed_up, unique_email
from tests.items.helpers import ITEMS, MERGE_PATCH, create_item, item_url, read_item
from tests.migrations import ALEMBIC_INI, alembic_config, migrate
from tests.migrations import test_engine as engine_for

pytestmark = pytest.mark.anyio

EXAMPLES = ALEMBIC_INI.parent / "migrations" / "examples" / "expand_contract"
EXPAND, CONTRACT = "example_expand_item_slug", "example_contract_item_slug"


async def example_migrate(url: str, revision: str, *, down: bool = False) -> None:
    """Move the example branch, with the project's migrations and the examples both known."""
    engine = engine_for(url)
    locations = os.pathsep.join(
        [str(ALEMBIC_INI.parent / "migrations" / "versions"), str(EXAMPLES)]
    )
    try:
        # Not in a transaction of ours: Alembic owns it, as under `app migrate`, so the
        # contract's autocommit block can end it.
        async with engine.connect() as connection:

            def step(sync: object) -> None:
                config = alembic_config(sync)  # type: ignore[arg-type]
                config.set_main_option("version_locations", locations)
                (command.downgrade if down else command.upgrade)(config, revision)

            await connection.run_sync(step)
            await connection.commit()
    finally:
        await engine.dispose()


@pytest.fixture
async def fresh_url(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of the same kind, migrated to the project's head."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        fresh = f"sqlite+aiosqlite:///{tmp_path / 'expand.db'}"
        await migrate(fresh, "head")
        yield fresh
        return
    name = f"{url.database}_expand_contract"
    admin = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        fresh = url.set(database=name).render_as_string(hide_password=False)
        await migrate(fresh, "head")
        yield fresh
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


async def slugs(url: str) -> dict[str, str | None]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT id, slug FROM items"))
            return {str(uuid.UUID(str(row.id))): row.slug for row in rows}
    finally:
        await engine.dispose()


async def previous_release_works(client: AsyncClient, headers: dict[str, str]) -> str:
    """Create, read, list, update and delete items with the N-1 code; return a kept item id."""
    kept = await create_item(client, headers, title="Kept lamp")
    gone = await create_item(client, headers, title="Gone lamp")
    assert (await read_item(client, headers, kept["id"]))["title"] == "Kept lamp"
    listed = await client.get(ITEMS, headers=headers)
    assert listed.status_code == 200
    assert {item["id"] for item in listed.json()["items"]} >= {kept["id"], gone["id"]}
    patched = await client.patch(
        item_url(kept["id"]), json={"title": "Kept desk lamp"}, headers=headers | MERGE_PATCH
    )
    assert patched.status_code == 200, patched.text
    assert (await client.delete(item_url(gone["id"]), headers=headers)).status_code == 204
    return str(kept["id"])


async def test_previous_release_runs_on_the_expanded_schema(fresh_url: str) -> None:
    app = create_app(make_settings(DATABASE_URL=fresh_url, CACHE_ENABLED=False))
    # Real commits (not the rolled-back harness): the migrations need the rows, and locks.
    async with LifespanManager(app), client_for(app) as client:
        headers = await signed_up(client, unique_email("expand"))
        before = await create_item(client, headers, title="Old Lamp")

        await example_migrate(fresh_url, EXPAND)
        # The backfill gave the existing row a slug; N-1 code then works as before ...
        assert (await slugs(fresh_url))[before["id"]] == f"old-lamp-{before['id'][:8]}"
        kept = await previous_release_works(client, headers)
        # ... and leaves the column empty in the rows it writes (the contract fills them).
        assert (await slugs(fresh_url))[kept] is None

        await example_migrate(fresh_url, CONTRACT)
        assert None not in (await slugs(fresh_url)).values()
        # Now N-1's inserts break: the contract must wait until no N-1 process is left.
        refused = await client.post(
            ITEMS, json={"title": "Late", "price": "1.00", "currency": "EUR"}, headers=headers
        )
        assert refused.status_code == 409, refused.text  # the integrity error, as a conflict

        # Both steps roll back, and the N-1 code works again.
        await example_migrate(fresh_url, "0005_security", down=True)
        await previous_release_works(client, headers)
