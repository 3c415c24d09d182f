"""A deadline for a whole outbound call: every try, the waits between them, and the body.

httpx bounds each phase of a call (connecting, each read and write, a pooled connection), not
the call: an upstream that sends a byte now and then, each within the read timeout, holds its
caller for as long as it likes, and a POST (which no caller bounds by itself) with it. The
resilient transport gives each call one deadline; past it the call raises
`httpx2.ReadTimeout` (a 504 `upstream_timeout` when left to rise, `core.upstream`), whether
it was waiting for the answer's head or reading its body.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager

import httpx2

EXPIRED = "The call to another service did not finish within HTTP_TOTAL_TIMEOUT."


class CallDeadline:
    """The moment one call must be over; `on_expiry` hears it passing (the host's breaker)."""

    def __init__(
        self, seconds: float, request: httpx2.Request, on_expiry: Callable[[], None]
    ) -> None:
        self.when = asyncio.get_running_loop().time() + seconds
        self._request = request
        self._on_expiry = on_expiry

    @contextmanager
    def _expired_as_read_timeout(self, scope: asyncio.Timeout) -> Iterator[None]:
        try:
            yield
        except TimeoutError as exc:
            if not scope.expired():
                raise  # someone else's timeout
            self._on_expiry()
            raise httpx2.ReadTimeout(EXPIRED, request=self._request) from exc

    async def run(self, call: Callable[[], Awaitable[httpx2.Response]]) -> httpx2.Response:
        """Await `call()` within the deadline; the response's body is read within it too."""
        scope = asyncio.timeout_at(self.when)
        with self._expired_as_read_timeout(scope):
            async with scope:
                response = await call()
        if isinstance(response.stream, httpx2.AsyncByteStream):
            response.stream = _BoundedBody(response.stream, self)
        return response

    async def next_chunk(self, chunks: AsyncIterator[bytes]) -> bytes | None:
        """The body's next chunk (None at its end), within the deadline."""
        scope = asyncio.timeout_at(self.when)
        with self._expired_as_read_timeout(scope):
            async with scope:
                return await anext(chunks, None)


class _BoundedBody(httpx2.AsyncByteStream):
    """A response body whose every chunk must arrive before the call's deadline."""

    def __init__(self, stream: httpx2.AsyncByteStream, deadline: CallDeadline) -> None:
        self._stream = stream
        self._deadline = deadline

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = aiter(self._stream)
        while (chunk := await self._deadline.next_chunk(chunks)) is not None:
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()
