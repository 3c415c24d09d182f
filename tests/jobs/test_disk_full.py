"""The results disk fills up mid-export: no partial file is left, and the owner is told why.

The file size limit (RLIMIT_FSIZE) of a child process stands in for a full disk: its writes past
the limit fail with EFBIG, as they would with ENOSPC, and no root is needed.
"""

import json
import subprocess
import sys
from pathlib import Path

from app.jobs.runner import public_error

# Writes an export-sized file page by page under a 64 KiB limit, and prints what its owner reads.
CHILD = """
import asyncio, json, resource, sys, uuid
from pathlib import Path
from app.jobs import results
from app.jobs.runner import is_disk_full, public_error

async def export() -> None:
    async with results.writing(Path(sys.argv[1]), uuid.uuid4()) as file:
        for _ in range(64):
            await file.write(b"x" * 4096)

resource.setrlimit(resource.RLIMIT_FSIZE, (65536, resource.RLIM_INFINITY))
try:
    asyncio.run(export())
except OSError as exc:
    print(json.dumps({"error": public_error(exc, timeout=1), "disk_full": is_disk_full(exc)}))
"""


def test_a_full_disk_leaves_no_partial_file_and_says_the_disk_is_full(tmp_path: Path) -> None:
    directory = tmp_path / "results"
    directory.mkdir()
    done = subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, "-c", CHILD, str(directory)],
        capture_output=True,
        timeout=60,
        check=True,
    )
    told = json.loads(done.stdout)
    assert told == {
        "error": "The job could not write its result: the disk is full (EFBIG).",
        "disk_full": True,
    }
    assert list(directory.iterdir()) == []  # not even the `.part` file


def test_other_os_errors_name_their_errno_but_no_path() -> None:
    error = public_error(FileNotFoundError(2, "No such file", "/srv/secret/x"), timeout=1)
    assert error == "The job failed (OSError ENOENT); the worker's log has the details."
    assert "/srv" not in error
