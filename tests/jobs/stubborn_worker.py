"""`app worker` with a job that ignores its cancellation, for shutdown tests (run with -m).

Its `stubborn` task appends `<pid> <time>` to the file STUBBORN_LOG names at each attempt, then,
while the file STUBBORN_BLOCK names exists, blocks for two minutes: in a thread
(STUBBORN_MODE=thread, cancelling the await leaves the thread running) or in a loop that
swallows every CancelledError (STUBBORN_MODE=swallow).
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
    if os.environ["STUBBORN_MODE"] == "thread":
        await asyncio.to_thread(time.sleep, BLOCK_SECONDS)
    else:
        for _tick in range(BLOCK_SECONDS * 10):
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.1)
    return Done()


if __name__ == "__main__":
    cast("dict[str, Handler]", tasks.HANDLERS)[TASK] = stubborn
    sys.exit(main())
