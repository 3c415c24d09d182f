"""Failures of calls to other services, and the problem each one answers.

The outbound client (`infra.http`) raises httpx's own errors, plus `CircuitOpenError` when a
host's breaker refuses a call. Callers that can do without the answer catch
`httpx2.HTTPError`; the rest let it rise, and the problem renderer turns it into a 503, 504
or 502 by its type (`upstream_problem`) instead of a 500.
"""

import httpx2

from app.core.errors import (
    AppError,
    ExternalServiceError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

# A response with one of these says the upstream itself is down or overloaded.
UNAVAILABLE_STATUSES = frozenset({502, 503, 504})


class CircuitOpenError(httpx2.TransportError):
    """A host's circuit breaker refused the call: it failed too often and is left alone.

    A `TransportError`, so code that already handles `httpx2.HTTPError` handles it too.
    """

    def __init__(
        self, origin: str, *, retry_after: int, request: httpx2.Request | None = None
    ) -> None:
        super().__init__(
            f"Calls to {origin} are paused after repeated failures; retry in {retry_after} s.",
            request=request,
        )
        self.origin = origin
        self.retry_after = retry_after


def upstream_problem(exc: httpx2.HTTPError | TimeoutError) -> AppError:
    """Return the problem a failed call to another service answers (503, 504 or 502)."""
    if isinstance(exc, CircuitOpenError):
        return UpstreamUnavailableError(
            "An upstream service is failing; calls to it are paused.",
            retry_after=exc.retry_after,
        )
    if isinstance(exc, httpx2.PoolTimeout):
        # Our own connection pool is full: too many calls in flight, not a slow upstream.
        return UpstreamUnavailableError("Too many calls to upstream services.", retry_after=1)
    if isinstance(exc, httpx2.TimeoutException | TimeoutError):
        return UpstreamTimeoutError("An upstream service did not answer in time.")
    if isinstance(exc, httpx2.TransportError):
        return UpstreamUnavailableError("An upstream service is unreachable.", retry_after=1)
    if isinstance(exc, httpx2.HTTPStatusError) and (
        exc.response.status_code in UNAVAILABLE_STATUSES
    ):
        return UpstreamUnavailableError("An upstream service is unavailable.", retry_after=1)
    return ExternalServiceError("An upstream service gave an answer that could not be used.")
