"""The `app` CLI with a job that ignores its cancellation, for shutdown tests (run with -m).

`python -m tests.jobs.stubborn_worker worker` is `app worker`; `... serve` is `app serve`,
whose single server runs in this process, so embedded jobs see the task too.

Its `stubborn` task appends `<pid> <time>` to the file STUBBORN_LOG names at each attempt, then,
while the file STUBBORN_BLOCK names exists, blocks for two minutes: in a thread
(STUBBORN_MODE=thread, cancelling the await leaves the thread running), in a loop that
swallows every CancelledError (STUBBORN_MODE=swallow), or, to compare, in a plain sleep that
its cancellation ends (STUBBORN_MODE=heed).
"""

import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import cast

from app import tasks
from app.cli import main
from app.jobs.claims import Claim
from app.jobs.runner import Done, Handler, JobContext

TASK = "stubborn"
BLOCK_SECONDS = 120


def _record_attempt() -> bool:
    """Append this attempt to the log; True when it should block."""
    with Path(os.environ["STUBBORN_LOG"]).open("a") as log:
        log.write(f"{os.getpid()} {time.time()}\n")
    return Path(os.environ["STUBBORN_BLOCK"]).exists()


async def stubborn(_: JobContext, __: Claim) -> Done:
    """Record the attempt, then block without heeding cancellation while told to."""
    if not await asyncio.to_thread(_record_attempt):
        return Done()
    mode = os.environ["STUBBORN_MODE"]
    if mode == "thread":
        await asyncio.to_thread(time.sleep, BLOCK_SECONDS)
    elif mode == "heed":
        await asyncio.sleep(BLOCK_SECONDS)
    else:
        for _tick in range(BLOCK_SECONDS * 10):
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.1)
    return Done()


def attempts_of(log: Path) -> list[tuple[int, float]]:
    """The attempts recorded in STUBBORN_LOG so far: (pid, time) each."""
    lines = log.read_text().split() if log.exists() else []
    return [(int(pid), float(at)) for pid, at in zip(lines[::2], lines[1::2], strict=True)]


if __name__ == "__main__":
    cast("dict[str, Handler]", tasks.HANDLERS)[TASK] = stubborn
    sys.exit(main())
