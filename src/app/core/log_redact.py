"""Secrets out of log lines: values of secret-named keys, and secret-shaped text anywhere."""

import functools
import re
from collections.abc import Mapping
from typing import Any

from structlog.typing import EventDict, WrappedLogger

REDACTED = "[REDACTED]"
_SENSITIVE_MARKERS = ("password", "passwd", "secret", "token", "authorization", "cookie", "api_key")


@functools.lru_cache(maxsize=1024)
def _is_sensitive(key: str) -> bool:
    # Cached: log lines repeat the same few keys, and this runs for every key of every line.
    lowered = key.lower()
    return any(marker in lowered for marker in _SENSITIVE_MARKERS)


# Secrets by their shape, wherever they appear in a string (messages, tracebacks, reprs): the
# password of a URL, a bearer credential, a JWT, one of our API keys.
_SECRET_SHAPES = (
    # Up to the last `@` of the authority: a password may hold `@` (urllib and redis-py read
    # it so; SQLAlchemy stops at the first and takes the rest for the host).
    (re.compile(r"(?<=://)[^/\s:@]*:[^/\s]*@"), REDACTED + "@"),
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
