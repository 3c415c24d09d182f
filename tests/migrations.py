"""Running Alembic against a test database through the project's own `migrations/env.py`."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core.settings_groups import DatabaseSettings
from app.db.session import create_engine

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


def test_engine(url: str) -> AsyncEngine:
    """An engine for `url` built the way the app builds its own."""
    database = DatabaseSettings(_env_file=None, DATABASE_URL=url)  # type: ignore[call-arg]
    return create_engine(database, application_name="tests")


def alembic_config(connection: Connection) -> Config:
    """Return the project's Alembic config, bound to an open connection."""
    config = Config(ALEMBIC_INI)
    config.attributes["connection"] = connection
    return config


async def migrate(url: str, revision: str, *, down: bool = False) -> None:
    """Upgrade (or downgrade) the database at `url` to `revision`."""
    engine = test_engine(url)
    try:
        async with engine.begin() as connection:
            step = command.downgrade if down else command.upgrade
            await connection.run_sync(lambda sync: step(alembic_config(sync), revision))
    finally:
        await engine.dispose()


async def check(url: str) -> None:
    """Raise if the models and the migrated schema differ."""
    engine = test_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(lambda sync: command.check(alembic_config(sync)))
    finally:
        await engine.dispose()


async def reset_postgres(url: str) -> None:
    """Drop everything in the test database's public schema."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("DROP SCHEMA public CASCADE")
            await connection.exec_driver_sql("CREATE SCHEMA public")
    finally:
        await engine.dispose()


async def empty_tables(url: str) -> None:
    """Delete every row a test committed to the PostgreSQL test database, keeping its schema."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            names = await connection.exec_driver_sql(
                "SELECT quote_ident(tablename) FROM pg_tables"
                " WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
            tables = ", ".join(names.scalars())
            if tables:
                await connection.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        await engine.dispose()
