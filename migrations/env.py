"""Alembic environment: async engine from the app's settings; works from the CLI and in tests."""

import asyncio
from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection

from app.core.config import get_settings
from app.db.base import UTCDateTime
from app.db.session import create_engine
from app.models import Base

config = context.config
target_metadata = Base.metadata

# Tests pass their own connection (and so their own database), the migration lint its own
# URL: their callers keep their logging. The CLI builds a connection and logs as alembic.ini says.
_embedded = {"connection", "offline_url"} & set(config.attributes)
if not _embedded and config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Write our column types as plain SQLAlchemy types, so migrations never import the app."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_server_default=True,
        render_item=_render_item,
    )


# On PostgreSQL every migration transaction first bounds how long it may wait for a lock (a
# migration queued behind a long query would block every query queued behind it: the outage
# lasts as long as the wait) and how long one statement may run. Retry a migration that hit the
# lock timeout; give a long backfill more time in its own migration:
# `op.execute("SET LOCAL statement_timeout = '1h'")`. scripts/lint_migrations.py checks for it.
LOCK_TIMEOUT = "5s"
STATEMENT_TIMEOUT = "15min"


def _run_with_timeouts() -> None:
    with context.begin_transaction():
        if context.get_context().dialect.name == "postgresql":
            context.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            context.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")
        context.run_migrations()


def _run(connection: Connection) -> None:
    _configure(connection)
    _run_with_timeouts()


def run_migrations_offline() -> None:
    """Emit SQL for the configured database without connecting."""
    # A caller may name the database kind without touching the settings (the migration lint).
    url = config.attributes.get("offline_url") or get_settings().database.url
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    _run_with_timeouts()


async def run_migrations_online() -> None:
    """Connect with the app's async engine and run the migrations."""
    settings = get_settings()
    # A migration sets its own statement timeout (15 minutes, or longer for a backfill): the
    # client's bound on a round trip would cut it short, so it has none here.
    database = settings.database.model_copy(update={"command_timeout": 0})
    engine = create_engine(database, application_name=settings.app.name)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
elif (connection := config.attributes.get("connection")) is not None:
    _run(connection)
else:
    asyncio.run(run_migrations_online())
