"""The log sink: a stream that stalls or breaks neither blocks nor fails whoever logs."""

import contextlib
import errno
import io
import os
import time
from collections.abc import Iterator

import pytest

from app.core.log_sink import MAX_QUEUED_LINES, LogSink

LINE = "x" * 99  # with its newline, 100 bytes: a pipe's 64 KiB buffer holds ~650


@pytest.fixture
def pipe() -> Iterator[tuple[io.BufferedReader, io.TextIOWrapper]]:
    read_end, write_end = os.pipe()
    reader = os.fdopen(read_end, "rb")
    writer = os.fdopen(write_end, "w")
    try:
        yield reader, writer
    finally:
        for end in (reader, writer):
            # The write end's buffer may not flush to a pipe closed at its other end.
            with contextlib.suppress(OSError):
                end.close()


def test_a_stalled_pipe_blocks_no_caller_and_the_lines_dropped_are_reported(
    pipe: tuple[io.BufferedReader, io.TextIOWrapper],
) -> None:
    reader, writer = pipe
    sink, reports = LogSink(writer), list[int]()
    sink.on_recovered = reports.append
    started = time.monotonic()
    sent = 3 * MAX_QUEUED_LINES  # far more than the pipe holds, and the queue
    for _ in range(sent):
        sink.write(LINE)
    elapsed = time.monotonic() - started
    assert not sink.flush(0.2)  # nobody reads: the lines wait
    os.set_blocking(reader.fileno(), False)
    received = b""
    deadline = time.monotonic() + 10
    while not sink.flush(0.05) and time.monotonic() < deadline:
        received += reader.read() or b""
    sink.write("after")  # the first line the stream takes once it flows again
    assert sink.flush(5)
    received += reader.read() or b""
    assert elapsed < 2  # a blocking write would never have returned
    assert received.endswith(b"after\n")
    assert reports  # the newest lines past what is held were dropped, and counted
    assert received.count(b"\n") + sum(reports) == sent + 1


def test_a_pipe_whose_reader_went_away_raises_nothing(
    pipe: tuple[io.BufferedReader, io.TextIOWrapper],
) -> None:
    reader, writer = pipe
    reader.close()
    sink = LogSink(writer)
    for _ in range(100):
        sink.write(LINE)
    assert sink.flush(5)  # written, or rather dropped, at once
    assert sink.dropped == 100


class FullDisk(io.StringIO):
    """A file on a disk that fills up, then frees space."""

    full = True

    def write(self, text: str) -> int:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(text)


def test_a_full_disk_drops_lines_until_it_has_room_then_says_how_many() -> None:
    stream = FullDisk()
    sink, reports = LogSink(stream), list[int]()
    sink.on_recovered = reports.append
    sink.write("lost")
    sink.write("lost too")
    stream.full = False
    sink.write("kept")
    assert (stream.getvalue(), reports) == ("kept\n", [2])


def test_a_forked_child_writes_its_own_lines(
    pipe: tuple[io.BufferedReader, io.TextIOWrapper],
) -> None:
    reader, writer = pipe
    sink = LogSink(writer)
    sink.write("parent")  # the parent's writer thread runs; a child does not inherit it
    assert sink.flush(5)
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        sink.write("child")
        os._exit(0 if sink.flush(5) else 1)
    _, status = os.waitpid(child, 0)
    writer.close()
    assert os.waitstatus_to_exitcode(status) == 0
    assert reader.read() == b"parent\nchild\n"
