"""Where log lines are written: a stream that may stall or break without stalling the service.

A log line is written from wherever it is logged, the event loop among them. A pipe whose
reader stalls (a log collector that hangs, a full `docker logs` pipe) blocks a plain write once
its buffer (64 KiB) is full: the whole worker stops, health probes and shutdown included. A
reader that went away makes every write raise `BrokenPipeError` into whatever was logging: a
request, or the shutdown handler. So a stream that can block (a pipe, a socket, a terminal)
is written by a thread of its own, fed through a bounded queue; a file or an in-memory buffer
(which never blocks) is written at once. Either way a failed write drops its lines instead of
raising, and the lines dropped are counted and reported once the stream takes lines again.

The thread writes what has gathered every `WRITE_INTERVAL_SECONDS`, or as soon as
`WAKE_AT_LINES` wait: waking it for each line (a request's access line) cost each request
~20 µs of CPU in thread switches, more than the write it saves the event loop.
"""

import atexit
import collections
import os
import stat
import threading
from collections.abc import Callable
from typing import TextIO

# Lines held while the stream does not take them (~ a few MiB of JSON lines); past it, newer
# lines are dropped rather than held without bound.
MAX_QUEUED_LINES = 10_000
# How often the writing thread writes the lines gathered meanwhile: a line reaches the stream
# within this long, and a burst of them is one write.
WRITE_INTERVAL_SECONDS = 0.05
# Lines that wake the writing thread at once, so a flood is written in batches of this size.
WAKE_AT_LINES = 256
# How long the process waits at exit for its queued lines to be written to a stalled stream.
EXIT_FLUSH_SECONDS = 2.0
# Errors of a stream that cannot be written: closed by its reader (EPIPE), a full disk, or a
# stream already closed in this process (ValueError).
STREAM_ERRORS = (OSError, ValueError)


def _may_block(stream: TextIO) -> bool:
    """Whether writing to `stream` can wait on a reader: a pipe, a socket or a terminal."""
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (OSError, ValueError, AttributeError):  # in-memory buffers have no descriptor
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


def _ignore_dropped(_: int) -> None:
    pass


class LogSink:
    """Write lines to one stream, never blocking on it or raising from it.

    `on_recovered(count)` is called (from the writing thread) when the stream takes lines again
    after `count` were dropped: the logging reports it as a line of its own.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.dropped = 0  # since the last report
        self.on_recovered: Callable[[int], None] = _ignore_dropped
        self._threaded = _may_block(stream)
        # One writer at a time for a stream written at once; re-entered by the drop report.
        self._lock = threading.RLock()
        # Lines, and the markers `flush` waits on (set once every line before them is written).
        self._queue: collections.deque[str | threading.Event] = collections.deque()
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None
        # A forked child (a server that loads the app before forking its workers) has no
        # writer thread: it starts its own on its first line, with the lines not yet written.
        os.register_at_fork(after_in_child=self._after_fork)

    def use(self, stream: TextIO) -> None:
        """Write to `stream` from now on (what was queued for the previous one goes first)."""
        self.flush(EXIT_FLUSH_SECONDS)
        self.stream = stream
        self._threaded = _may_block(stream)

    def write(self, line: str) -> None:
        """Write one line (its newline added), or queue it for the writing thread."""
        if not self._threaded:
            with self._lock:
                self._write_now(line + "\n", 1)
            return
        if len(self._queue) >= MAX_QUEUED_LINES:
            self.dropped += 1  # the stream has stalled: the newest lines are the ones lost
            return
        self._queue.append(line + "\n")
        if self._writer is None:
            self._start_writer()
        elif len(self._queue) == WAKE_AT_LINES:
            self._wake.set()

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the lines queued so far to be written.

        Returns whether they were: a stalled stream keeps them, and the caller goes on without.
        """
        if self._writer is None:
            return True
        # A marker, even behind an empty queue: the writer may still hold lines it took.
        written = threading.Event()
        self._queue.append(written)
        self._wake.set()
        return written.wait(timeout)

    def _after_fork(self) -> None:
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._writer = None
        self._queue = collections.deque(line for line in self._queue if isinstance(line, str))
        if self._queue:
            self._start_writer()
            self._wake.set()

    def _start_writer(self) -> None:
        with self._lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._run, name="log-writer", daemon=True)
                self._writer.start()
                atexit.register(self.flush, EXIT_FLUSH_SECONDS)

    def _run(self) -> None:
        while True:
            self._wake.wait(WRITE_INTERVAL_SECONDS)
            self._wake.clear()
            lines: list[str] = []
            while self._queue:
                item = self._queue.popleft()
                if isinstance(item, str):
                    lines.append(item)
                    continue
                self._write_batch(lines)
                lines = []
                item.set()
            self._write_batch(lines)

    def _write_batch(self, lines: list[str]) -> None:
        if lines:
            self._write_now("".join(lines), len(lines))

    def _write_now(self, text: str, lines: int) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except STREAM_ERRORS:
            self.dropped += lines
            return
        if self.dropped:
            dropped, self.dropped = self.dropped, 0
            self.on_recovered(dropped)
