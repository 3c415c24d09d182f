"""Result files: written piece by piece into a private directory, removed when they expire.

Files are named after their job (`<job id>.json`) and written under a temporary name first,
so a reader never sees half a file and a crash leaves only a `.part` file for the sweep.
"""

import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.to_thread

PART = ".part"


def results_dir(configured: str) -> Path:
    """The directory for result files, created private (0700) if missing."""
    path = Path(configured)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def path_of(directory: Path, job_id: uuid.UUID) -> Path:
    """Where the result file of `job_id` lives."""
    return directory / f"{job_id}.json"


@asynccontextmanager
async def writing(directory: Path, job_id: uuid.UUID) -> AsyncIterator[anyio.AsyncFile[bytes]]:
    """Open the job's file for writing; it appears under its name only if the block succeeds."""
    final = path_of(directory, job_id)
    part = final.with_suffix(final.suffix + PART)
    # Owner-only: the file holds a user's personal data.
    descriptor = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        async with await anyio.open_file(descriptor, "wb", closefd=True) as file:
            yield file
        await anyio.to_thread.run_sync(os.replace, part, final)
    finally:
        part.unlink(missing_ok=True)


async def remove(directory: Path, job_ids: list[uuid.UUID]) -> None:
    """Delete the files of these jobs (those already gone are skipped)."""

    def unlink_all() -> None:
        for job_id in job_ids:
            path_of(directory, job_id).unlink(missing_ok=True)

    await anyio.to_thread.run_sync(unlink_all)


async def sweep(directory: Path, *, keep: set[uuid.UUID], older_than_seconds: float) -> int:
    """Delete files older than the limit whose job is not in `keep` (crashed writes, orphans)."""

    def sweep_files() -> int:
        cutoff = time.time() - older_than_seconds
        removed = 0
        for path in directory.glob("*.json*"):
            stem = path.name.split(".", 1)[0]
            try:
                owned = uuid.UUID(stem) in keep
            except ValueError:
                continue  # not ours
            if not owned and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    return await anyio.to_thread.run_sync(sweep_files)
