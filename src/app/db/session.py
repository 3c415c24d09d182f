"""The async engine built from the database settings, and its session factory."""

import time
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection, StaticPool

from app.core.settings_groups import DatabaseSettings

SQLITE_BUSY_TIMEOUT_MS = 5_000
# An execution option: this SQLite connection sends no BEGIN (each statement commits alone).
_NO_TRANSACTION = "app_no_transaction"


def _is_sqlite_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or "mode=memory" in str(url)


def _engine_options(settings: DatabaseSettings, url: URL, application_name: str) -> dict[str, Any]:
    # Bound parameters (password hashes, key digests, personal data) never appear in error
    # messages or in the statements `DATABASE_ECHO` logs.
    options: dict[str, Any] = {"hide_parameters": True}
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
            "command_timeout": settings.command_timeout or None,
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
        options = connection.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT" or options.get(_NO_TRANSACTION):
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


def _report_unanswered_commands(engine: AsyncEngine) -> None:
    """Report a round trip the database left unanswered as the driver's `OperationalError`.

    asyncpg raises a bare `TimeoutError` when `DATABASE_COMMAND_TIMEOUT` passes, which
    SQLAlchemy passes on unwrapped (though it drops the connection, as for a cancellation):
    reported as it is, the request would answer 500. As an `OperationalError` it is the
    database being unavailable, like a refused connection: 503 `database_unavailable`.
    """

    @event.listens_for(engine.sync_engine, "handle_error")
    def _unanswered(context: ExceptionContext) -> BaseException | None:
        error = context.original_exception
        if not isinstance(error, TimeoutError):
            return None
        reported = context.dialect.loaded_dbapi.OperationalError(
            "the database did not answer in time", error
        )
        return exc.OperationalError(
            context.statement, None, reported, hide_parameters=True, connection_invalidated=True
        )


def _ping_after_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Ping a pooled connection before use only when it sat idle for `idle_seconds` or more.

    SQLAlchemy's `pool_pre_ping` pings on every checkout: three round trips on asyncpg
    (BEGIN, `;`, ROLLBACK), more than the one statement most requests send. A busy connection
    was alive a moment ago; one that sat idle is what a restart, a failover or a firewall
    may have closed. A connection that dies between uses anyway fails its statement with a
    disconnect error: SQLAlchemy then discards every connection older than the failure, so
    one outage costs at most the requests in flight (503 `database_unavailable`), and the
    next checkout connects afresh.
    """

    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(_: Any, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(
        dbapi_connection: Any, record: ConnectionPoolEntry, _: PoolProxiedConnection
    ) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return  # new, or busy a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool discards this connection and checks out another (up to three tries).
            raise exc.DisconnectionError("the pooled connection is gone") from error


def create_engine(settings: DatabaseSettings, *, application_name: str) -> AsyncEngine:
    """Build the async engine for `DATABASE_URL` with the pool options from settings.

    `application_name` labels the connections on PostgreSQL (`pg_stat_activity`).
    """
    url = make_url(settings.url)
    engine = create_async_engine(url, **_engine_options(settings, url, application_name))
    if url.get_backend_name() == "sqlite":
        _configure_sqlite(engine, url)
    else:  # a SQLite file never goes away under a pooled connection
        _wrap_connect_errors(engine)
        _report_unanswered_commands(engine)
        _ping_after_idle(engine, settings.pool_ping_after_idle)
    return engine


def create_session_factory(bind: Any) -> async_sessionmaker[AsyncSession]:
    """Return the session factory for an engine (or, in tests, one connection)."""
    return async_sessionmaker(bind=bind, expire_on_commit=False)


def create_read_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return a factory of sessions that send no BEGIN or COMMIT: each statement commits.

    For requests that only read: a transaction around a few SELECTs costs two round trips
    and, under READ COMMITTED, gives them nothing (each statement takes its own snapshot
    either way); on SQLite it would take the write lock (BEGIN IMMEDIATE). A single-row
    write such as an API key's `last_used_at` commits by itself. Savepoints need a
    transaction: a request that may use one must take `create_session_factory`'s sessions.
    """
    if engine.dialect.name == "sqlite":
        # Already autocommitting (see `_configure_sqlite`): only our BEGIN is to be left out.
        # AUTOCOMMIT would do the same and then reset the isolation level on every check-in.
        return create_session_factory(engine.execution_options(**{_NO_TRANSACTION: True}))
    return create_session_factory(engine.execution_options(isolation_level="AUTOCOMMIT"))


def safe_url(database_url: str) -> str:
    """Return the URL with its password masked, for logs."""
    return make_url(database_url).render_as_string(hide_password=True)
