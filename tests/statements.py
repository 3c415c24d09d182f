"""Count what the database driver sends: every statement, BEGIN, COMMIT and ping included.

SQLAlchemy's statement events miss the driver's transaction control (asyncpg sends BEGIN
itself, sqlite3 commits in C), so the counter also listens below them: SQLite's trace
callback sees everything the library runs; on PostgreSQL, the statements come from
SQLAlchemy's cursor events and BEGIN, COMMIT, ROLLBACK and pings from asyncpg's query
loggers (which see those, but not the prepared statements SQLAlchemy runs).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import await_

CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", ";")


class StatementLog:
    """The statements the engine's connections sent, in order, while `recording`."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.recording = False

    def add(self, statement: str) -> None:
        """Record one statement (called by the driver, possibly from its own thread)."""
        if self.recording:
            self.statements.append(" ".join(statement.split()))

    @contextmanager
    def record(self) -> Iterator[list[str]]:
        """Record what is sent inside the block; yield the list it fills."""
        self.statements = []
        self.recording = True
        try:
            yield self.statements
        finally:
            self.recording = False


def log_statements(engine: AsyncEngine) -> StatementLog:
    """Attach a `StatementLog` to every connection the engine opens from now on."""
    log = StatementLog()
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _: ConnectionPoolEntry) -> None:
            await_(dbapi_connection._connection.set_trace_callback(log.add))

        return log

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _on_statement(*args: Any) -> None:
        log.add(args[2])

    def _on_query(record: Any) -> None:
        # Statements are counted above; asyncpg logs some of them too (executemany).
        if record.query.upper().startswith(CONTROL):
            log.add(record.query)

    @event.listens_for(engine.sync_engine, "connect")
    def _log_control(dbapi_connection: Any, _: ConnectionPoolEntry) -> None:
        dbapi_connection._connection.add_query_logger(_on_query)

    return log


def transaction_control(statements: list[str]) -> list[str]:
    """The BEGIN, COMMIT, ROLLBACK and ping statements among `statements`."""
    return [s for s in statements if s.upper().startswith(CONTROL)]
