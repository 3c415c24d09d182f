"""File downloads: the whole file, whatever `Range` the request carries."""

import os
from collections.abc import Mapping

from starlette.responses import FileResponse
from starlette.types import Receive, Scope, Send

# Request headers that would turn Starlette's answer into a partial one (206, 416) or a
# text/plain 400 for a range it cannot parse.
_RANGE_HEADERS = frozenset({b"range", b"if-range"})


class WholeFileResponse(FileResponse):
    """A file sent whole, with 200: every file route of the API answers with this class.

    Range requests are optional (RFC 9110 section 14.2: a server may ignore `Range`), and the
    document promises the whole file: the 206, 416 and plain-text 400 that `FileResponse`
    answers to ranges are statuses and media types no client was told of, and the 400 and
    416 are not problem details. So the file goes whole, and `Accept-Ranges: none` says so.
    """

    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        """The headers `FileResponse` sends, but advertising no range support."""
        super().init_headers(headers)
        self.headers["accept-ranges"] = "none"  # before FileResponse sets it to "bytes"

    def set_stat_headers(self, stat_result: os.stat_result) -> None:
        """Set Starlette's headers, with a weak `ETag`.

        The tag is made of the file's time and size, not of the bytes sent, and the file may
        go gzipped, which a strong tag would forbid.
        """
        super().set_stat_headers(stat_result)
        etag = self.headers["etag"]
        if not etag.startswith("W/"):
            self.headers["etag"] = f"W/{etag}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the file as if the request had no `Range` (nor `If-Range`)."""
        headers = scope.get("headers", [])
        if any(name.lower() in _RANGE_HEADERS for name, _ in headers):
            kept = [(name, value) for name, value in headers if name.lower() not in _RANGE_HEADERS]
            scope = {**scope, "headers": kept}
        await super().__call__(scope, receive, send)
