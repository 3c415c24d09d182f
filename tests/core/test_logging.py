import io
import json
import logging
import uuid
from datetime import UTC, datetime

import pytest
import structlog

from app.core.log_redact import REDACTED
from app.core.logging import configure_logging, use_json
from tests.harness import make_settings


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


@pytest.fixture
def json_stream() -> io.StringIO:
    stream = io.StringIO()
    configure_logging(make_settings(LOG_FORMAT="json").logging, stream=stream)
    return stream


def test_structlog_lines_are_json_with_context(json_stream: io.StringIO) -> None:
    structlog.contextvars.bind_contextvars(request_id="req-1")
    try:
        structlog.get_logger("app.test").info("something_happened", item_id=7)
    finally:
        structlog.contextvars.clear_contextvars()
    [line] = lines(json_stream)
    assert line["event"] == "something_happened"
    assert line["item_id"] == 7
    assert line["request_id"] == "req-1"
    assert line["level"] == "info"
    assert line["logger"] == "app.test"
    assert str(line["timestamp"]).endswith("Z")


def test_stdlib_and_uvicorn_logs_share_the_format(json_stream: io.StringIO) -> None:
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
    [line] = lines(json_stream)
    assert line["event"] == "Started server process [42]"
    assert line["logger"] == "uvicorn.error"
    assert line["level"] == "info"


def test_uvicorn_access_log_is_silenced(json_stream: io.StringIO) -> None:
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET / HTTP/1.1" 200')
    assert lines(json_stream) == []


def test_sqlalchemy_echo_goes_through_the_formatter() -> None:
    stream = io.StringIO()
    configure_logging(make_settings(LOG_FORMAT="json").logging, sql_echo=True, stream=stream)
    logging.getLogger("sqlalchemy.engine.Engine").info("SELECT 1")
    assert [line["event"] for line in lines(stream)] == ["SELECT 1"]
    configure_logging(make_settings(LOG_FORMAT="json").logging, stream=stream)
    logging.getLogger("sqlalchemy.engine.Engine").info("SELECT 2")
    assert [line["event"] for line in lines(stream)] == ["SELECT 1"]


def test_secrets_are_redacted(json_stream: io.StringIO) -> None:
    structlog.get_logger("app.test").info(
        "login",
        password="hunter2",
        refresh_token="abc",
        headers={"Authorization": "Bearer xyz", "Accept": "text/html"},
        email="a@example.com",
    )
    [line] = lines(json_stream)
    assert line["password"] == REDACTED
    assert line["refresh_token"] == REDACTED
    assert line["headers"] == {"Authorization": REDACTED, "Accept": "text/html"}
    assert line["email"] == "a@example.com"
    assert "hunter2" not in json_stream.getvalue()


def test_each_plain_string_of_a_line_is_scrubbed_on_its_own(json_stream: io.StringIO) -> None:
    # The line's strings are searched together for a secret's shape, then scrubbed one by one:
    # a secret in any of them is caught, and parts of two values never make one.
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbg"
    structlog.get_logger("app.test").info(
        "request",
        method="GET",
        path=f"/verify/{jwt}",
        referer="https://app.example.com/",
        scheme="http:",
        rest="//not-a-url",
        note="Bearer",
        next_note="abcdefghijkl",
    )
    [line] = lines(json_stream)
    assert line["path"] == f"/verify/{REDACTED}"
    assert line["method"] == "GET"
    assert line["referer"] == "https://app.example.com/"
    assert (line["scheme"], line["rest"]) == ("http:", "//not-a-url")
    assert (line["note"], line["next_note"]) == ("Bearer", "abcdefghijkl")
    assert jwt not in json_stream.getvalue()


class Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


@pytest.mark.parametrize("huge", [None, 2**70], ids=["orjson", "beyond-64-bits"])
def test_every_kind_of_value_renders_and_plain_ones_pass_unchanged(
    json_stream: io.StringIO, huge: int | None
) -> None:
    # An integer beyond orjson's 64 bits sends the line through the standard library's json:
    # it must read the same.
    item_id = uuid.UUID(int=7)
    structlog.get_logger("app.test").info(
        "values",
        count=3,
        ratio=0.5,
        flag=True,
        nothing=None,
        huge=huge,
        item_id=item_id,
        at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        by_number={1: "one"},
        opaque=Opaque(),
        url="postgresql://app:s3cret@db/app",
        nested=[{"token": "t"}, "Bearer abcdefghijkl"],
    )
    [line] = lines(json_stream)
    assert (line["count"], line["ratio"], line["flag"], line["nothing"]) == (3, 0.5, True, None)
    assert line["huge"] == huge
    assert line["item_id"] == str(item_id)
    assert line["at"] == "2026-01-02T03:04:05+00:00"
    assert line["by_number"] == {"1": "one"}
    assert line["opaque"] == "<opaque>"
    assert line["url"] == f"postgresql://{REDACTED}@db/app"
    assert line["nested"] == [{"token": REDACTED}, f"Bearer {REDACTED}"]
    assert "s3cret" not in json_stream.getvalue()


def test_exceptions_are_rendered_into_the_line(json_stream: io.StringIO) -> None:
    try:
        raise ValueError("broken")
    except ValueError:
        structlog.get_logger("app.test").exception("failed")
    [line] = lines(json_stream)
    assert "ValueError: broken" in str(line["exception"])


def test_a_new_format_reaches_loggers_already_used() -> None:
    # Loggers are cached on first use; each app (and test) configures logging again.
    logger = structlog.get_logger("app.reconfigured")
    console = io.StringIO()
    configure_logging(make_settings(LOG_FORMAT="console").logging, stream=console)
    logger.info("first")
    as_json = io.StringIO()
    configure_logging(make_settings(LOG_FORMAT="json").logging, stream=as_json)
    logger.info("second")
    assert "first" in console.getvalue()
    assert not console.getvalue().lstrip().startswith("{")
    assert [line["event"] for line in lines(as_json)] == ["second"]


def test_level_filters_lower_levels() -> None:
    stream = io.StringIO()
    configure_logging(make_settings(LOG_FORMAT="json", LOG_LEVEL="WARNING").logging, stream=stream)
    logging.getLogger("app.plain").info("hidden")
    logging.getLogger("app.plain").warning("shown")
    assert [line["event"] for line in lines(stream)] == ["shown"]


def test_console_format_on_a_terminal() -> None:
    terminal = FakeTerminal()
    configure_logging(make_settings(LOG_FORMAT="auto").logging, stream=terminal)
    logging.getLogger("app.plain").warning("readable")
    output = terminal.getvalue()
    assert "readable" in output
    assert not output.lstrip().startswith("{")


@pytest.mark.parametrize(
    ("log_format", "tty", "expected"),
    [("auto", True, False), ("auto", False, True), ("json", True, True), ("console", False, False)],
)
def test_format_choice(log_format: str, tty: bool, expected: bool) -> None:
    stream = FakeTerminal() if tty else io.StringIO()
    assert use_json(log_format, stream) is expected
