"""Slow statement warnings: `db.slow_statement` with the SQL and its duration, never its values.

The statement logged is the one sent to the driver, with placeholders where the values go;
the values themselves are never read here (and the engine hides them from its own errors).
"""

import time
from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine

log = structlog.get_logger(__name__)

# A bulk insert's statement can run to megabytes; the start says which one it was.
MAX_STATEMENT_CHARS = 2000
_STARTED = "_slow_statement_started"


def _report(statement: str, started: float | None, threshold: float, *, failed: bool) -> None:
    if started is None:
        return
    elapsed = time.perf_counter() - started
    if elapsed < threshold:
        return
    log.warning(
        "db.slow_statement",
        statement=statement[:MAX_STATEMENT_CHARS],
        duration_ms=round(elapsed * 1000, 1),
        failed=failed,
    )


def log_slow_statements(engine: AsyncEngine, *, threshold_ms: int) -> None:
    """Warn about every statement of `engine` that takes `threshold_ms` or more (0: never).

    Statements that fail after the threshold (a statement timeout) are reported too.
    """
    if threshold_ms <= 0:
        return
    threshold = threshold_ms / 1000

    # The execution context lives exactly as long as one statement: the start time goes there.
    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _start(
        _conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        if context is not None:
            setattr(context, _STARTED, time.perf_counter())

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _finish(
        _conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        _report(statement, getattr(context, _STARTED, None), threshold, failed=False)

    @event.listens_for(engine.sync_engine, "handle_error")
    def _failed(error: ExceptionContext) -> None:
        started = getattr(error.execution_context, _STARTED, None)
        _report(error.statement or "", started, threshold, failed=True)
