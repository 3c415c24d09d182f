"""Rate limiting with `limits`: per-client windows, IETF `RateLimit` headers, 429 problems.

Read `RateLimitMiddleware` for what a request pays and `rate_limit_keys.ClientKey` for whose
quota it uses; the wiring place turns settings into its limits, storage and paths.
"""

import math
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import structlog
from limits import RateLimitItem
from limits.aio.storage import Storage
from limits.aio.strategies import (
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.errors import StorageError
from limits.util import WindowStats
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import RateLimitedError, ServiceUnavailableError
from app.core.problems import ProblemRenderer
from app.middleware.rate_limit_keys import client_ip_key

log = structlog.get_logger(__name__)

STRATEGIES: dict[str, Callable[[Storage], RateLimiter]] = {
    "moving-window": MovingWindowRateLimiter,
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
}
# Redis errors, `limits`' wrapper, and socket errors (builtin ConnectionError and TimeoutError).
STORAGE_ERRORS: tuple[type[Exception], ...] = (RedisError, StorageError, OSError)
ENFORCE_PATH_PREFIX = "Paths and prefixes must start with '/'."
_POLICY_NAME = re.compile(r"[a-z][a-z0-9_-]*")


@dataclass(frozen=True, slots=True)
class _Quota:
    label: str  # part of the storage key: equal limits of two policies must not share counts
    name: bytes
    item: RateLimitItem
    amount: bytes


class _Policy:
    """Named quotas checked in order; the `RateLimit-Policy` header value that lists them."""

    def __init__(self, limits: Mapping[str, RateLimitItem]) -> None:
        if not limits:
            raise ValueError("At least one limit is needed.")
        for name, item in limits.items():
            if not _POLICY_NAME.fullmatch(name):
                raise ValueError(f"Limit names must be like 'minute', not {name!r}.")
            if item.amount < 1:
                raise ValueError(f"Limit {name!r} must allow at least one request.")
        self.quotas = tuple(
            _Quota(name, name.encode(), item, str(item.amount).encode())
            for name, item in limits.items()
        )
        self.header = b", ".join(
            b'"%s";q=%d;w=%d' % (q.name, q.item.amount, q.item.get_expiry()) for q in self.quotas
        )


class RateLimitMiddleware:
    """Limit requests under `prefixes` per client; answer 429 problems past a quota.

    Requests to `auth_paths` (POST) use `auth_limits` per client address; other requests under
    `prefixes`, except those at or below an `exempt` path, use `limits` per `key_func`.
    Each limited request hits its quotas in order and stops at the first refusal, so a request
    refused by the first (shortest) window never counts against the later ones; one refused by
    a later window has used a slot of the earlier, which frees again within that window.
    Storage errors let requests through (`fail_open`) or answer 503 with `Retry-After:
    unavailable_retry_after`; either way they are logged and counted in `storage_errors`.
    Leaving a failing Redis alone is the Redis client's job (its circuit breaker refuses
    commands at once for a while), so an outage costs no timeout per request here.
    The storage belongs to the caller, who closes it. `on_refused` is called for each 429,
    `on_storage_error` for each storage error, a call the breaker refused included (metrics
    and alerts count them).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: Mapping[str, RateLimitItem],
        auth_limits: Mapping[str, RateLimitItem],
        storage: Storage,
        strategy: str,
        fail_open: bool,
        renderer: ProblemRenderer,
        key_func: Callable[[Scope], str],
        prefixes: Collection[str],
        exempt: Collection[str] = (),
        auth_paths: Collection[str] = (),
        unavailable_retry_after: int = 1,
        on_refused: Callable[[], None] = lambda: None,
        on_storage_error: Callable[[], None] = lambda: None,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}, not {strategy!r}.")
        if unavailable_retry_after < 1:
            raise ValueError("unavailable_retry_after must be at least one second.")
        if not all(path.startswith("/") for path in (*prefixes, *exempt, *auth_paths)):
            raise ValueError(ENFORCE_PATH_PREFIX)
        try:
            self.limiter: RateLimiter = STRATEGIES[strategy](storage)
        except NotImplementedError as exc:
            raise ValueError(f"{type(storage).__name__} does not support {strategy}.") from exc
        self.app = app
        self.policy = _Policy(limits)
        self.auth_policy = _Policy(auth_limits)
        self.fail_open = fail_open
        self.renderer = renderer
        self.key_func = key_func
        self.prefixes = tuple(prefixes)
        self.exempt = tuple(exempt)
        self.exempt_below = tuple(path.rstrip("/") + "/" for path in exempt)
        self.auth_paths = frozenset(auth_paths)
        self.unavailable_retry_after = unavailable_retry_after
        self.on_refused = on_refused
        self.on_storage_error = on_storage_error
        # Failed storage calls in this process (`rate_limit_backend_errors_total` adds them up).
        self.storage_errors = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        path = _route_path(scope)
        if scope["method"] == "POST" and path in self.auth_paths:
            policy, key = self.auth_policy, client_ip_key(scope)
        elif path.startswith(self.prefixes) and not (
            path in self.exempt or path.startswith(self.exempt_below)
        ):
            policy, key = self.policy, self.key_func(scope)
        else:
            await self.app(scope, receive, send)
            return

        try:
            quota, stats, allowed = await self._consume(policy, key)
        except STORAGE_ERRORS as exc:
            await self._storage_failed(exc, scope, receive, send)
            return
        headers = _headers(policy, quota, stats, refused=not allowed)
        if not allowed:
            self.on_refused()
            await self._too_many(headers, scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _consume(self, policy: _Policy, key: str) -> tuple[_Quota, WindowStats, bool]:
        """Hit each quota; return the refusing one, or the one with the fewest requests left."""
        limiter = self.limiter
        for quota in policy.quotas:
            if not await limiter.hit(quota.item, quota.label, key):
                return quota, await limiter.get_window_stats(quota.item, quota.label, key), False
        tightest: tuple[_Quota, WindowStats] | None = None
        for quota in policy.quotas:
            stats = await limiter.get_window_stats(quota.item, quota.label, key)
            if tightest is None or stats.remaining < tightest[1].remaining:
                tightest = (quota, stats)
        assert tightest is not None  # noqa: S101 - `_Policy` refuses an empty list  # nosec B101
        return (*tightest, True)

    async def _too_many(
        self, headers: list[tuple[bytes, bytes]], scope: Scope, receive: Receive, send: Send
    ) -> None:
        error = RateLimitedError(
            "Too many requests; retry after the number of seconds in Retry-After."
        )
        response = self.renderer.from_exception(scope, error)
        reset = next(value for name, value in headers if name == b"x-ratelimit-reset")
        response.raw_headers += [*headers, (b"retry-after", reset)]
        await response(scope, receive, send)

    async def _storage_failed(
        self, exc: Exception, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Count and log a storage error (`exc`), then pass the request or answer 503."""
        self.storage_errors += 1
        self.on_storage_error()
        # One line per request in an outage: the log collapses repeats to one per interval.
        log.warning(
            "rate_limit_storage_error",
            error_type=type(exc).__name__,
            storage_errors=self.storage_errors,
            fail_open=self.fail_open,
        )
        if self.fail_open:
            await self.app(scope, receive, send)
            return
        error = ServiceUnavailableError(
            "Rate limits cannot be checked right now; retry shortly.",
            retry_after=self.unavailable_retry_after,
        )
        await self.renderer.from_exception(scope, error)(scope, receive, send)


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path + "/"):
        return path[len(root_path) :]
    return path


def _headers(
    policy: _Policy, quota: _Quota, stats: WindowStats, *, refused: bool
) -> list[tuple[bytes, bytes]]:
    remaining = 0 if refused else max(0, stats.remaining)
    reset = max(1 if refused else 0, math.ceil(stats.reset_time - time.time()))
    return [
        (b"ratelimit-policy", policy.header),
        (b"ratelimit", b'"%s";r=%d;t=%d' % (quota.name, remaining, reset)),
        (b"x-ratelimit-limit", quota.amount),
        (b"x-ratelimit-remaining", b"%d" % remaining),
        (b"x-ratelimit-reset", b"%d" % reset),
    ]
