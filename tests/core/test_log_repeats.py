"""Repeated warnings: the first is written, then one per interval with the count dropped."""

import logging
from typing import Any

import pytest
import structlog

from app.core.log_repeats import CollapseRepeats
from tests.harness import FakeClock, log_lines


def warning(**fields: Any) -> dict[str, Any]:
    return {"event": "database_unavailable", "level": "warning", "logger": "app", **fields}


def passes(collapse: CollapseRepeats, event: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return dict(collapse(None, "warning", dict(event)))
    except structlog.DropEvent:
        return None


def test_identical_warnings_are_written_once_per_interval_with_a_count() -> None:
    clock = FakeClock()
    collapse = CollapseRepeats(10.0, clock=clock)
    first = passes(collapse, warning(path="/a", request_id="1", error="OperationalError"))
    dropped = [
        passes(collapse, warning(path=f"/{n}", request_id=str(n), error="OperationalError"))
        for n in range(5)
    ]
    clock.advance(10.0)
    later = passes(collapse, warning(path="/z", request_id="9", error="OperationalError"))
    assert first is not None
    assert "repeated" not in first
    assert dropped == [None] * 5
    assert later is not None
    assert later["repeated"] == 5


def test_warnings_that_differ_in_kind_are_each_written() -> None:
    collapse = CollapseRepeats(10.0, clock=FakeClock())
    kinds = [
        warning(error="OperationalError"),
        warning(error="TimeoutError"),
        {**warning(error="OperationalError"), "event": "cache_error"},
    ]
    assert all(passes(collapse, kind) is not None for kind in kinds)


@pytest.mark.parametrize("level", ["info", "error"])
def test_other_levels_are_never_collapsed(level: str) -> None:
    collapse = CollapseRepeats(10.0, clock=FakeClock())
    line = {**warning(), "level": level}
    assert all(passes(collapse, line) is not None for _ in range(3))


def test_the_app_log_collapses_a_flood_of_warnings() -> None:
    log = structlog.get_logger("test.flood")
    with log_lines() as logs:
        for n in range(100):
            log.warning("rate_limit_storage_error", error_type="TimeoutError", storage_errors=n)
        log.info("request", status=200)
        log.info("request", status=200)
    assert len(logs.events("rate_limit_storage_error")) == 1
    assert len(logs.events("request")) == 2


def test_a_negative_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="interval"):
        CollapseRepeats(-1)


@pytest.mark.parametrize("logger", ["uvicorn.error", "sqlalchemy.pool", "asyncio", "httpx2"])
def test_a_repeated_standard_library_warning_is_left_out_not_raised(logger: str) -> None:
    """Collapsing drops the line; the code that logged it (uvicorn's parser, SQLAlchemy's
    pool) must carry on: structlog's DropEvent is a BaseException."""
    with log_lines() as lines:
        for _ in range(3):
            logging.getLogger(logger).warning("Invalid HTTP request received.")
    assert len(lines.events("Invalid HTTP request received.")) == 1


def test_a_repeated_warning_with_its_traceback_is_left_out_not_raised() -> None:
    """As a pool logs a connection it failed to close: the same warning, the same traceback."""
    pool = logging.getLogger("sqlalchemy.pool.impl.AsyncAdaptedQueuePool")
    with log_lines() as lines:
        for _ in range(3):
            try:
                raise ConnectionResetError("server closed the connection")
            except ConnectionResetError:
                pool.warning("Exception terminating connection", exc_info=True)
    assert len(lines.events("Exception terminating connection")) == 1
