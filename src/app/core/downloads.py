"""File downloads: a file opened before the answer begins, sent whole, with its validators.

Every file route answers with `WholeFileResponse`, from a file `open_download` opened: the
route learns that the file is gone while it can still answer 404, and a file removed once the
answer began (a newer export replacing it, the purge) is still read to its end from the open
descriptor. Starlette's `FileResponse` stats and opens the path again as it answers: a file
removed in between is its `RuntimeError` (a 500), or a connection cut after the 200.
"""

import hashlib
import os
import stat
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus
from pathlib import Path
from urllib.parse import quote

import anyio
import anyio.to_thread
from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.core.conditional import is_not_modified

CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class OpenedFile:
    """A regular file opened for reading, with the size and time it had when opened."""

    file: anyio.AsyncFile[bytes]
    size: int
    modified: float

    @property
    def etag(self) -> str:
        """A weak tag of the file's time and size: the bytes may go gzipped (RFC 9110 8.8.1)."""
        version = hashlib.md5(f"{self.modified}-{self.size}".encode(), usedforsecurity=False)
        return f'W/"{version.hexdigest()}"'


async def open_download(path: Path) -> OpenedFile | None:
    """Open the regular file at `path` for a download; None when there is none."""
    try:
        file = await anyio.open_file(path, "rb")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    found = await anyio.to_thread.run_sync(os.fstat, file.wrapped.fileno())
    if not stat.S_ISREG(found.st_mode):
        await file.aclose()
        return None
    return OpenedFile(file, found.st_size, found.st_mtime)


def _modified_since(value: str | None, modified: float) -> bool:
    """Whether the file changed after the date of `If-Modified-Since` (no date: it did)."""
    if value is None:
        return True
    try:
        since = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return True  # an invalid date is ignored (RFC 9110 13.1.3)
    return since.tzinfo is None or int(modified) > since.timestamp()


class WholeFileResponse(Response):
    """An opened file sent whole with 200, or 304 to a client that holds this version.

    `Range` is ignored (RFC 9110 14.2 lets a server ignore it; the document promises the whole
    file), and `Accept-Ranges: none` says so. The validators are a weak `ETag` and
    `Last-Modified`: `If-None-Match` is checked first; `If-Modified-Since` only without it
    (RFC 9110 13.2.2). The file is closed once sent.
    """

    def __init__(
        self,
        opened: OpenedFile,
        *,
        media_type: str,
        filename: str,
        if_none_match: str | None = None,
        if_modified_since: str | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        self.opened = opened
        validators = {
            "etag": opened.etag,
            "last-modified": formatdate(opened.modified, usegmt=True),
        }
        if if_none_match is not None:
            unchanged = is_not_modified(if_none_match, opened.etag.removeprefix("W/"))
        else:
            unchanged = not _modified_since(if_modified_since, opened.modified)
        if unchanged:
            super().__init__(
                status_code=HTTPStatus.NOT_MODIFIED, headers=validators, background=background
            )
            return
        headers = validators | {
            "content-length": str(opened.size),
            "accept-ranges": "none",
            "content-disposition": _attachment(filename),
        }
        super().__init__(media_type=media_type, headers=headers, background=background)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the headers, then the file (none for a 304).

        A HEAD is sent the file too, as every response of the service is: the server leaves the
        body out, and what lies between (compression) answers with the GET's headers.
        """
        remaining = 0 if self.status_code == HTTPStatus.NOT_MODIFIED else self.opened.size
        try:
            start = {"type": "http.response.start", "status": self.status_code}
            await send(start | {"headers": self.raw_headers})
            if remaining == 0:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            while remaining > 0:
                chunk = await self.opened.file.read(min(CHUNK_BYTES, remaining))
                remaining = remaining - len(chunk) if chunk else 0  # a file cut short ends here
                await send(
                    {"type": "http.response.body", "body": chunk, "more_body": remaining > 0}
                )
        finally:
            await self.opened.file.aclose()
        if self.background is not None:
            await self.background()


def _attachment(filename: str) -> str:
    quoted = quote(filename)
    if quoted != filename:  # RFC 6266: a name beyond ASCII goes percent-encoded in `filename*`
        return f"attachment; filename*=utf-8''{quoted}"
    return f'attachment; filename="{filename}"'
