"""Compression: Starlette's gzip for clients that accept it, nothing at all for the others."""

from starlette.middleware.gzip import GZipResponder
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ACCEPT_ENCODING = b"accept-encoding"
ETAG = b"etag"


def accepts_gzip(scope: Scope) -> bool:
    """Whether the request's `Accept-Encoding` names gzip with a weight above 0.

    `gzip;q=0` says the client refuses gzip (RFC 9110 section 12.5.3); a substring test read
    it as consent.
    """
    return any(
        name == ACCEPT_ENCODING and any(_gzip_wanted(coding) for coding in value.split(b","))
        for name, value in scope["headers"]
    )


def _gzip_wanted(coding: bytes) -> bool:
    token, _, parameters = coding.partition(b";")
    if token.strip().lower() != b"gzip":
        return False
    for parameter in parameters.split(b";"):
        key, _, weight = parameter.partition(b"=")
        if key.strip().lower() == b"q":
            try:
                return float(weight.strip()) > 0
            except ValueError:
                return False  # a weight that is no number: not a consent
    return True


def _strongly_tagged(message: Message) -> bool:
    """Whether a response start message carries a strong entity tag (not `W/"..."`)."""
    return any(
        name.lower() == ETAG and not value.lstrip().startswith(b"W/")
        for name, value in message.get("headers", ())
    )


class CompressionMiddleware:
    """Gzip responses over `minimum_size` (never event streams) for clients that accept it.

    A response with a strong ETag goes out as the app wrote it: a strong validator names
    exact bytes (RFC 9110 section 8.8.1), so the gzipped bytes would need a tag of their own,
    and every `If-Match` and `If-None-Match` check would have to know both.

    Starlette's GZipMiddleware inspects every response even when the client accepts no
    compression (measured: ~10 µs a request); here those requests go straight to the app.
    Their responses carry no `Vary: Accept-Encoding`, which is safe: a cache could only hand
    such an uncompressed response to a client that accepts gzip, never the reverse.
    """

    def __init__(self, app: ASGIApp, *, minimum_size: int, compresslevel: int) -> None:
        if minimum_size < 0 or not 1 <= compresslevel <= 9:  # noqa: PLR2004 - zlib's range
            raise ValueError("minimum_size must be >= 0 and compresslevel within 1..9.")
        self.app = app
        self.minimum_size = minimum_size
        self.compresslevel = compresslevel

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not accepts_gzip(scope):
            await self.app(scope, receive, send)
            return
        app = _uncompressed_when_strongly_tagged(self.app, send)
        responder = GZipResponder(app, self.minimum_size, compresslevel=self.compresslevel)
        await responder(scope, receive, send)


def _uncompressed_when_strongly_tagged(app: ASGIApp, send: Send) -> ASGIApp:
    """`app` as the compressor calls it, whose strongly tagged responses bypass it to `send`."""

    async def guarded(scope: Scope, receive: Receive, compress: Send) -> None:
        target = compress

        async def choose(message: Message) -> None:
            nonlocal target
            if message["type"] == "http.response.start" and _strongly_tagged(message):
                target = send
            await target(message)

        await app(scope, receive, choose)

    return guarded
