"""Collapse repeated warnings: during an outage every request fails the same way, once per line.

An outage must not write a warning per request (one run wrote 6,500 identical lines in 20 s).
The first warning of a kind is written; identical ones within `interval` seconds are counted
and dropped; the next one after the interval is written with `repeated`, the number dropped
since the last one written. "Identical" ignores what changes with every request (path, request
id, timings, running counters), so a warning per failed request collapses to one per interval.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from structlog.typing import EventDict, WrappedLogger

DEFAULT_INTERVAL_SECONDS = 10.0
# Fields that differ between requests failing the same way; they do not make a warning new.
VOLATILE_FIELDS = frozenset(
    {
        "timestamp",
        "request_id",
        "path",
        "route",
        "method",
        "client",
        "duration_ms",
        "errors",
        "storage_errors",
        "failures",
        "repeated",
        "exc_info",
        "exception",
    }
)
_MAX_KINDS = 1024  # distinct warnings remembered at once; older ones are forgotten first


@dataclass(slots=True)
class _Seen:
    next_at: float
    dropped: int = 0


class CollapseRepeats:
    """A structlog processor that drops repeats of a warning within `interval` seconds.

    Place it after `add_log_level`. Lines below WARNING (the access log) and above it (errors,
    each with its own trace) pass untouched.
    """

    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval < 0:
            raise ValueError("interval must be zero or more seconds.")
        self.interval = interval
        self._clock = clock
        self._seen: dict[tuple[object, ...], _Seen] = {}
        self._lock = threading.Lock()  # stdlib records may come from other threads

    def reset(self) -> None:
        """Forget every warning seen (logging was configured anew)."""
        with self._lock:
            self._seen.clear()

    def __call__(self, _: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        """Return the line (with `repeated` when some were dropped), or drop it."""
        if event_dict.get("level") != "warning":
            return event_dict
        kind = tuple(
            sorted(
                (key, repr(value))
                for key, value in event_dict.items()
                if key not in VOLATILE_FIELDS and not key.startswith("_")
            )
        )
        now = self._clock()
        with self._lock:
            seen = self._seen.pop(kind, None)
            if seen is not None and now < seen.next_at:
                seen.dropped += 1
                self._seen[kind] = seen
                raise structlog.DropEvent
            if len(self._seen) >= _MAX_KINDS:
                del self._seen[next(iter(self._seen))]
            self._seen[kind] = _Seen(next_at=now + self.interval)
        if seen is not None and seen.dropped:
            event_dict["repeated"] = seen.dropped
        return event_dict
