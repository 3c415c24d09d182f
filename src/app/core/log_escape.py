"""Control characters in console log lines, escaped: a terminal would obey them.

A value a client chose (a path, a header, an exception's message) may hold escape sequences
that colour, retitle, clear or overwrite a terminal, or a line break that forges a log line.
JSON lines escape them by their format; console lines print most text as it is, so this
processor escapes them first.
"""

from structlog.typing import EventDict, WrappedLogger

# C0 and C1 control characters and DEL, as `\xNN`; a traceback keeps its line breaks.
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_IN_TRACEBACKS = {code: text for code, text in _ESCAPES.items() if code != ord("\n")}
_TRACEBACKS = frozenset({"exception", "stack"})


def escape_control_characters(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Escape the control characters of every text value, which the console prints as is."""
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = value.translate(_IN_TRACEBACKS if key in _TRACEBACKS else _ESCAPES)
    return event_dict
