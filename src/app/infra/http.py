"""The outbound HTTP client: one per process, built in the wiring place, resilient by default.

Every call goes through `ResilientTransport`, which wraps httpx's own transport:

- timeouts for connecting, each read and write, and a pooled connection (`HTTP_*_TIMEOUT`),
  and one deadline for the whole call, its retries and its body (`HTTP_TOTAL_TIMEOUT`);
- the request id sent as `X-Request-ID`, so the upstream's logs join ours;
- retries with exponential backoff and jitter (stamina) on connection failures and
  502/503/504, for idempotent methods only: a POST or PATCH is sent once, since the upstream
  may have acted on it. A `Retry-After` up to `RETRY_AFTER_CAP_SECONDS` is waited for; a
  longer one ends the retries (the caller gets the response);
- a circuit breaker per host (`core.circuit`): after `CIRCUIT_BREAKER_FAILURE_THRESHOLD`
  failures in a row, calls to that host raise `CircuitOpenError` at once, without touching
  the network, for `CIRCUIT_BREAKER_RESET_SECONDS`; then one probe call decides.

Failures are httpx's own errors, so `except httpx2.HTTPError` handles all of them; one left
to rise becomes a 503, 504 or 502 problem (`core.upstream`).
"""

import email.utils
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import httpx2
import stamina

from app.core.circuit import CircuitBreaker, State
from app.core.logging import current_request_id
from app.core.settings_operations import OutboundSettings
from app.core.upstream import UNAVAILABLE_STATUSES, CircuitOpenError
from app.infra.call_deadline import CallDeadline

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
# The host did not serve the call: counted against its breaker.
HOST_FAILURES = (
    httpx2.ConnectError,
    httpx2.ConnectTimeout,
    httpx2.ReadTimeout,
    httpx2.WriteTimeout,
    httpx2.ReadError,
    httpx2.WriteError,
    httpx2.RemoteProtocolError,
    httpx2.ProxyError,
)
# Worth another try of an idempotent call: the connection failed, not the upstream's work.
# A read timeout is not retried: the upstream is slow, and a retry would double the wait.
RETRIED_ERRORS = (
    httpx2.ConnectError,
    httpx2.ConnectTimeout,
    httpx2.ReadError,
    httpx2.WriteError,
    httpx2.RemoteProtocolError,
)
RETRY_AFTER_CAP_SECONDS = 5.0
_T = TypeVar("_T")
_DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_HOSTS = 256  # breakers kept; the oldest closed ones make room for new hosts


class HostBreakers:
    """One circuit breaker per origin (scheme, host, port), created on first use."""

    def __init__(
        self,
        *,
        failure_threshold: int,
        reset_seconds: float,
        max_hosts: int = MAX_HOSTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self.max_hosts = max_hosts
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}

    def for_url(self, url: httpx2.URL) -> CircuitBreaker:
        """Return the breaker of `url`'s origin (never its path, query or credentials)."""
        host = f"[{url.host}]" if ":" in url.host else url.host  # an IPv6 address
        origin = f"{url.scheme}://{host}:{url.port or _DEFAULT_PORTS.get(url.scheme, 0)}"
        breaker = self._breakers.get(origin)
        if breaker is None:
            if len(self._breakers) >= self.max_hosts:
                self._evict()
            breaker = self._breakers[origin] = CircuitBreaker(
                origin,
                failure_threshold=self.failure_threshold,
                cool_down=self.reset_seconds,
                clock=self._clock,
            )
        return breaker

    def _evict(self) -> None:
        # Dicts keep insertion order: drop the oldest breaker that is not resting a host.
        closed = [name for name, b in self._breakers.items() if b.state is State.CLOSED]
        del self._breakers[closed[0] if closed else next(iter(self._breakers))]


class _RetryableResponse(Exception):
    """A 502/503/504 answer to an idempotent call, raised so stamina may retry it."""

    def __init__(self, response: httpx2.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Return the wait a `Retry-After` header asks for (seconds or an HTTP date), or None."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class ResilientTransport(httpx2.AsyncBaseTransport):
    """Retries, per-host circuit breakers and `X-Request-ID` around another transport."""

    def __init__(
        self,
        transport: httpx2.AsyncBaseTransport,
        *,
        retries: int,
        breakers: HostBreakers,
        wait_initial: float = 0.1,
        wait_max: float = 2.0,
        wait_jitter: float = 0.1,
        retry_after_cap: float = RETRY_AFTER_CAP_SECONDS,
        total_timeout: float | None = None,
        on_transition: Callable[[str], None] | None = None,
    ) -> None:
        if retries < 0 or wait_initial < 0 or wait_max < wait_initial or wait_jitter < 0:
            raise ValueError("retries and waits must be >= 0, and wait_max >= wait_initial.")
        if total_timeout is not None and total_timeout <= 0:
            raise ValueError("total_timeout must be > 0.")
        self.transport = transport
        self.total_timeout = total_timeout
        self.retries = retries
        self.breakers = breakers
        self._waits = {
            "wait_initial": wait_initial,
            "wait_max": wait_max,
            "wait_jitter": wait_jitter,
        }
        self.retry_after_cap = retry_after_cap
        self.on_transition = on_transition  # hears a breaker's new state: open, half_open, closed

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send `request` through its host's breaker, retrying where that is safe.

        With `total_timeout`, the call (its tries, the waits between them, and reading the
        body) raises `httpx2.ReadTimeout` once that many seconds have passed, counted against
        the host: an upstream that answers a byte at a time passes every read timeout.
        """
        request_id = current_request_id()
        if request_id is not None and "X-Request-ID" not in request.headers:
            request.headers["X-Request-ID"] = request_id
        breaker = self.breakers.for_url(request.url)
        if self.total_timeout is None:
            return await self._send(request, breaker)
        deadline = CallDeadline(
            self.total_timeout, request, on_expiry=lambda: self._tell(breaker, breaker.failed)
        )
        return await deadline.run(lambda: self._send(request, breaker))

    async def _send(self, request: httpx2.Request, breaker: CircuitBreaker) -> httpx2.Response:
        if not self._may_retry(request):
            return await self._attempt(request, breaker, retrying=False)
        pending: httpx2.Response | None = None  # the failed answer to drop before a retry
        try:
            async for attempt in stamina.retry_context(
                on=self._backoff, attempts=self.retries + 1, timeout=None, **self._waits
            ):
                with attempt:
                    if pending is not None:
                        await pending.aclose()
                        pending = None
                    try:
                        return await self._attempt(request, breaker, retrying=True)
                    except _RetryableResponse as exc:
                        pending = exc.response
                        raise
        except _RetryableResponse as exc:
            return exc.response  # out of tries: the caller reads the upstream's answer
        except BaseException:
            # Cancelled while waiting to retry (the caller's own timeout): free the connection.
            if pending is not None:
                await pending.aclose()
            raise
        raise AssertionError("unreachable")  # stamina returns or raises

    def _may_retry(self, request: httpx2.Request) -> bool:
        # A streamed body cannot be sent twice; bytes can.
        return (
            self.retries > 0
            and request.method in IDEMPOTENT_METHODS
            and isinstance(request.stream, httpx2.ByteStream)
        )

    async def _attempt(
        self, request: httpx2.Request, breaker: CircuitBreaker, *, retrying: bool
    ) -> httpx2.Response:
        if not self._tell(breaker, breaker.allow):
            raise CircuitOpenError(breaker.name, retry_after=breaker.retry_after, request=request)
        try:
            response = await self.transport.handle_async_request(request)
        except HOST_FAILURES:
            self._tell(breaker, breaker.failed)
            raise
        # Anything else (our pool full, a cancelled call) says nothing about the host; a
        # probe lost that way lapses after the reset time (core.circuit).
        if response.status_code not in UNAVAILABLE_STATUSES:
            self._tell(breaker, breaker.succeeded)
            return response
        self._tell(breaker, breaker.failed)
        if retrying:
            raise _RetryableResponse(response)
        return response

    def _tell(self, breaker: CircuitBreaker, report: Callable[[], _T]) -> _T:
        """Call one of the breaker's methods; pass a change of state on to `on_transition`."""
        before = breaker.state
        result = report()
        if breaker.state is not before and self.on_transition is not None:
            self.on_transition(breaker.state.value)
        return result

    def _backoff(self, exc: Exception) -> bool | float:
        """Whether stamina retries after `exc`; a float is the wait `Retry-After` asked for."""
        if not isinstance(exc, _RetryableResponse):
            return isinstance(exc, RETRIED_ERRORS)
        wait = retry_after_seconds(exc.response.headers.get("Retry-After"))
        if wait is None:
            return True
        # Waiting less than asked is pointless, and much longer holds the caller up.
        return wait if wait <= self.retry_after_cap else False

    async def aclose(self) -> None:
        """Close the wrapped transport and its connections."""
        await self.transport.aclose()


def create_http_client(
    settings: OutboundSettings,
    *,
    user_agent: str,
    on_circuit_transition: Callable[[str], None] | None = None,
) -> httpx2.AsyncClient:
    """Return the process's pooled client, with timeouts, retries and per-host breakers."""
    breakers = HostBreakers(
        failure_threshold=settings.breaker_failures, reset_seconds=settings.breaker_reset_seconds
    )
    transport = ResilientTransport(
        httpx2.AsyncHTTPTransport(),
        retries=settings.retries,
        breakers=breakers,
        total_timeout=settings.total_timeout,
        on_transition=on_circuit_transition,
    )
    return httpx2.AsyncClient(
        transport=transport,
        timeout=httpx2.Timeout(
            connect=settings.connect_timeout,
            read=settings.read_timeout,
            write=settings.write_timeout,
            pool=settings.pool_timeout,
        ),
        headers={"User-Agent": user_agent},
        follow_redirects=False,
    )
