"""Structured logging: one format for our logs, uvicorn's and SQLAlchemy's."""

import functools
import json
import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import orjson
import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger

from app.core.log_escape import escape_control_characters
from app.core.log_repeats import CollapseRepeats
from app.core.log_sink import LogSink
from app.core.settings_groups import LoggingSettings

REDACTED = "[REDACTED]"
_SENSITIVE_MARKERS = ("password", "passwd", "secret", "token", "authorization", "cookie", "api_key")

# uvicorn and SQLAlchemy install handlers of their own; ours replace them so every
# line has one format. uvicorn's access log is replaced by our access log middleware.
_FOREIGN_LOGGERS = ("uvicorn", "uvicorn.error", "sqlalchemy", "sqlalchemy.engine", "fastapi")
_SILENCED_LOGGERS = ("uvicorn.access",)
# The HTTP client logs every outbound URL at INFO, and webhook URLs carry tokens.
_WARNINGS_ONLY_LOGGERS = ("httpx2", "httpcore")
_POOL = "sqlalchemy.pool"


@functools.lru_cache(maxsize=1024)
def _is_sensitive(key: str) -> bool:
    # Cached: log lines repeat the same few keys, and this runs for every key of every line.
    lowered = key.lower()
    return any(marker in lowered for marker in _SENSITIVE_MARKERS)


# Secrets by their shape, wherever they appear in a string (messages, tracebacks, reprs): the
# password of a URL, a bearer credential, a JWT, one of our API keys.
_SECRET_SHAPES = (
    (re.compile(r"(?<=://)[^/\s:@]*:[^/\s@]*@"), REDACTED + "@"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"\bpfb_[0-9a-f]{8}_[A-Za-z0-9_-]{16,}"), REDACTED),
)


# One cheap search rules out nearly every string a log line holds (paths, names, numbers).
_MIGHT_HOLD_A_SECRET = re.compile(r"://|(?i:bearer|basic)|eyJ|pfb_")


def scrub(text: str) -> str:
    """Replace secret-shaped parts of `text` (URL passwords, bearer tokens, JWTs, API keys)."""
    if _MIGHT_HOLD_A_SECRET.search(text) is None:
        return text
    for pattern, replacement in _SECRET_SHAPES:
        text = pattern.sub(replacement, text)
    return text


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {
            key: REDACTED if isinstance(key, str) and _is_sensitive(key) else _redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(item) for item in value]
    return value


# Values that cannot hold a secret; checked by exact type, which costs less than the ABC checks.
_PLAIN_TYPES = frozenset({int, float, bool, type(None)})


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Replace the values of secret-named keys, at any depth, and secret-shaped text anywhere."""
    texts = []
    for key, value in event_dict.items():
        if _is_sensitive(key):
            event_dict[key] = REDACTED
        elif type(value) in _PLAIN_TYPES:
            continue
        elif type(value) is str:
            texts.append(value)
        elif isinstance(value, str | Mapping | list | tuple):
            event_dict[key] = _redact(value)
    # One search over a line's plain strings: a regex call per value cost more than the rest of
    # this pass. NUL cannot be part of a match, so no match spans two values.
    if texts and _MIGHT_HOLD_A_SECRET.search("\0".join(texts)) is not None:
        for key, value in event_dict.items():
            if type(value) is str:
                event_dict[key] = scrub(value)
    return event_dict


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
