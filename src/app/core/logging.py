"""Structured logging: one format for our logs, uvicorn's and SQLAlchemy's."""

import json
import logging
import sys
from typing import Any, TextIO

import orjson
import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger

from app.core.log_escape import escape_control_characters
from app.core.log_redact import redact_secrets
from app.core.log_repeats import CollapseRepeats
from app.core.log_sink import LogSink
from app.core.settings_groups import LoggingSettings

# uvicorn and SQLAlchemy install handlers of their own; ours replace them so every
# line has one format. uvicorn's access log is replaced by our access log middleware.
_FOREIGN_LOGGERS = ("uvicorn", "uvicorn.error", "sqlalchemy", "sqlalchemy.engine", "fastapi")
_SILENCED_LOGGERS = ("uvicorn.access",)
# The HTTP client logs every outbound URL at INFO, and webhook URLs carry tokens.
_WARNINGS_ONLY_LOGGERS = ("httpx2", "httpcore")
_POOL = "sqlalchemy.pool"


def render_json(event_dict: EventDict, default: Any = None, **_: Any) -> str:
    """Serialize a log line with orjson, or the standard library for what orjson refuses.

    orjson writes a line in a fraction of `json.dumps`'s time; it refuses integers beyond 64
    bits, which `json` writes as they are. `default` is the renderer's fallback for the rest.
    """
    try:
        return orjson.dumps(event_dict, default=default, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        # Values orjson writes natively (UUIDs, datetimes, enums) come out as orjson writes them.
        def same_as_orjson(value: Any) -> Any:
            return orjson.loads(orjson.dumps(value, default=default))

        return json.dumps(event_dict, default=same_as_orjson)


def add_trace_ids(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Add `trace_id` and `span_id` of the current span, when tracing gave the line one."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = format(context.trace_id, "032x")
        event_dict["span_id"] = format(context.span_id, "016x")
    return event_dict


def use_json(log_format: str, stream: TextIO) -> bool:
    """Decide the output format: JSON unless asked for console or writing to a terminal."""
    if log_format == "auto":
        return not stream.isatty()
    return log_format == "json"


# One instance for the process: loggers cached on first use keep the processors they saw.
_REPEATS = CollapseRepeats()
# One list for the process, changed in place: a logger cached on first use keeps the list it
# saw, so a new format (tests configure several) reaches loggers already used. Their level
# filter is part of their class and stays as it was at first use.
_PROCESSORS: list[Processor] = []


def _quiet_pool_clean_up(record: logging.LogRecord) -> bool:
    """Log SQLAlchemy's failures to reset or close a pooled connection as warnings, untraced.

    The pool logs each at error level with a traceback, though the connection is discarded and
    replaced either way, and each comes from the database or the request, not from a bug: a
    server that stopped answering (the command timeout), one that went away, a request stopped
    at its deadline mid-close. An outage would otherwise log a traceback per connection.
    """
    if record.exc_info and record.levelno >= logging.ERROR and record.name.startswith(_POOL):
        error = record.exc_info[1]
        record.msg, record.args = f"{record.getMessage()}: {type(error).__name__}", ()
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None
    return True


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        # One warning per kind and interval, with a count: outages fail every request alike.
        _REPEATS,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Tracebacks become text before redaction, so secrets in them are scrubbed too. The text
        # is the standard one: no local variables, which may hold passwords and keys.
        structlog.processors.format_exc_info,
        redact_secrets,
    ]


def _renderer(as_json: bool, stream: TextIO) -> list[Processor]:
    if as_json:
        return [structlog.processors.JSONRenderer(serializer=render_json)]
    return [
        escape_control_characters,
        structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
        ),
    ]


# Where every line goes, ours and the standard library's; `configure_logging` swaps its stream
# and cached loggers follow. It never blocks on the stream nor raises from it (`log_sink`).
_SINK = LogSink(sys.stdout)


def _report_dropped(count: int) -> None:
    structlog.get_logger(__name__).warning("log_lines_dropped", dropped=count)


_SINK.on_recovered = _report_dropped


class _SinkHandler(logging.Handler):
    """The standard library's handler, writing to the sink.

    A stalled or broken stream then stalls neither uvicorn's nor SQLAlchemy's lines, nor makes
    them print tracebacks of their own to stderr.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except structlog.DropEvent:
            # A processor left the line out (a repeated warning). structlog's own loggers catch
            # this; the standard library's do not, and it is a BaseException: uncaught, it
            # escaped `logger.warning()` into uvicorn's parser or SQLAlchemy's pool.
            return
        except Exception:  # noqa: BLE001 - the standard library's contract for a bad record
            self.handleError(record)
            return
        _SINK.write(line)


class LineLogger:
    """A structlog logger that writes rendered lines straight to the sink.

    Our own lines skip the stdlib machinery (LogRecord, handler, formatter): measured, that
    path was the largest cost of the per-request access log line.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def msg(self, message: str) -> None:
        """Write one rendered line."""
        _SINK.write(message)

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def _line_logger(*args: Any) -> LineLogger:
    return LineLogger(str(args[0]) if args else "app")


def configure_logging(
    settings: LoggingSettings, *, sql_echo: bool = False, stream: TextIO | None = None
) -> None:
    """Route structlog and stdlib logging, in one format, to `stream` (stdout by default).

    `sql_echo` (`DATABASE_ECHO`) logs every SQL statement through the same format.
    """
    stream = stream or sys.stdout
    level = logging.getLevelNamesMapping()[settings.level]
    shared = _shared_processors()
    renderer = _renderer(use_json(settings.format, stream), stream)

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )
    handler = _SinkHandler()
    handler.setFormatter(formatter)
    handler.addFilter(_quiet_pool_clean_up)

    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _FOREIGN_LOGGERS:
        foreign = logging.getLogger(name)
        foreign.handlers.clear()
        foreign.propagate = True
    for name in _SILENCED_LOGGERS:
        logging.getLogger(name).disabled = True
    for name in _WARNINGS_ONLY_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    # SQLAlchemy's own `echo=True` adds a second handler; a level on its logger does not.
    logging.getLogger("sqlalchemy.engine").setLevel(
        logging.INFO if sql_echo else logging.WARNING,
    )

    _SINK.use(stream)
    _REPEATS.reset()
    _PROCESSORS[:] = [*shared, *renderer]
    structlog.configure(
        processors=_PROCESSORS,
        logger_factory=_line_logger,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )


def flush_logs(timeout: float) -> bool:
    """Wait up to `timeout` seconds for the lines logged so far to reach the stream.

    For a process about to end without the interpreter's exit (`os._exit`), which would drop
    the lines the log writer still holds. Returns whether they were written.
    """
    return _SINK.flush(timeout)


def bind_request_context(**values: Any) -> None:
    """Start a fresh log context for one request, so nothing leaks from the previous one."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(**values)


def bind_user(user_id: str) -> None:
    """Put `user_id` on every later log line of this request, the access log line included.

    Call it where the request's caller becomes known (authentication), from async code: the
    request's middleware and async dependencies share one context, a worker thread does not.
    """
    structlog.contextvars.bind_contextvars(user_id=user_id)


def current_request_id() -> str | None:
    """Return the id of the request being handled (bound by the request id middleware)."""
    value = structlog.contextvars.get_contextvars().get("request_id")
    return value if isinstance(value, str) else None
