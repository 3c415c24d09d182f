"""The async engine built from the database settings, and its session factory."""

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from app.core.settings_groups import DatabaseSettings

SQLITE_BUSY_TIMEOUT_MS = 5_000


def _is_sqlite_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or "mode=memory" in str(url)


def _engine_options(settings: DatabaseSettings, url: URL, application_name: str) -> dict[str, Any]:
    # Bound parameters (password hashes, key digests, personal data) never appear in error
    # messages or in the statements `DATABASE_ECHO` logs.
    options: dict[str, Any] = {"pool_pre_ping": True, "hide_parameters": True}
    if url.get_backend_name() == "sqlite" and _is_sqlite_memory(url):
        return options | {"poolclass": StaticPool}
    options |= {
        "pool_size": settings.pool_size,
        "max_overflow": settings.max_overflow,
        "pool_timeout": settings.pool_timeout,
        "pool_recycle": settings.pool_recycle,
    }
    if url.get_driver_name() == "asyncpg":
        server_settings = {"application_name": application_name[:63]}
        if settings.statement_timeout_ms:
            server_settings["statement_timeout"] = str(settings.statement_timeout_ms)
        options["connect_args"] = {
            "server_settings": server_settings,
            "timeout": settings.connect_timeout,
        }
    return options


def _unicode_lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _configure_sqlite(engine: AsyncEngine, url: URL) -> None:
    """Enforce foreign keys, and emit BEGIN ourselves so savepoints and DDL are transactional.

    Python's sqlite3 driver otherwise starts transactions only before DML, which breaks
    SAVEPOINT (used for test isolation and nested transactions) and transactional migrations.
    """
    file_database = not _is_sqlite_memory(url)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if file_database:
            # WAL lets readers run while one connection writes.
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()
        # SQLite's own lower() knows ASCII only; searches must ignore case in every script.
        dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return
        # IMMEDIATE takes the write lock up front: a deferred transaction that reads and then
        # writes fails at once ("database is locked") when another connection wrote meanwhile.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _wrap_connect_errors(engine: AsyncEngine) -> None:
    """Report every failure to connect as the driver's `OperationalError`.

    A refused or timed-out connection reaches SQLAlchemy as a bare `OSError` or
    `TimeoutError` (asyncpg raises them as they are, and so do its errors at start-up such as
    "the database system is starting up"); SQLAlchemy wraps only the driver's own errors. As
    an `OperationalError`, "cannot connect" is one kind of error for the rest of the service:
    a 503 `database_unavailable`, never a 500.
    """

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, _: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except dialect.loaded_dbapi.Error:
            raise
        except Exception as exc:
            message = f"cannot connect to the database: {type(exc).__name__}"
            raise dialect.loaded_dbapi.OperationalError(message, exc) from exc


def create_engine(settings: DatabaseSettings, *, application_name: str) -> AsyncEngine:
    """Build the async engine for `DATABASE_URL` with the pool options from settings.

    `application_name` labels the connections on PostgreSQL (`pg_stat_activity`).
    """
    url = make_url(settings.url)
    engine = create_async_engine(url, **_engine_options(settings, url, application_name))
    if url.get_backend_name() == "sqlite":
        _configure_sqlite(engine, url)
    else:
        _wrap_connect_errors(engine)
    return engine


def create_session_factory(bind: Any) -> async_sessionmaker[AsyncSession]:
    """Return the session factory for an engine (or, in tests, one connection)."""
    return async_sessionmaker(bind=bind, expire_on_commit=False)


def safe_url(database_url: str) -> str:
    """Return the URL with its password masked, for logs."""
    return make_url(database_url).render_as_string(hide_password=True)
