"""Rate limiting: per-client quotas, IETF `RateLimit` headers, 429 problems.

Read `RateLimitMiddleware` for what a request pays and `rate_limit_keys.ClientKey` for whose
quota it uses; the wiring place turns settings into its quotas, store and paths.
"""

import math
import re
from collections.abc import Callable, Collection, Sequence

import structlog
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import RateLimitedError, ServiceUnavailableError
from app.core.problems import ProblemRenderer
from app.core.quotas import Decision, Quota, QuotaStore
from app.middleware.rate_limit_keys import client_ip_key
from app.middleware.scope import route_path

log = structlog.get_logger(__name__)

# Redis errors (the circuit breaker's refusal among them) and socket errors (builtin
# ConnectionError and TimeoutError).
STORAGE_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError)
ENFORCE_PATH_PREFIX = "Paths and prefixes must start with '/'."
_POLICY_NAME = re.compile(r"[a-z][a-z0-9_-]*")


class _Policy:
    """Named quotas checked together; the `RateLimit-Policy` header value that lists them."""

    def __init__(self, quotas: Sequence[Quota]) -> None:
        if not quotas:
            raise ValueError("At least one limit is needed.")
        for quota in quotas:
            if not _POLICY_NAME.fullmatch(quota.name):
                raise ValueError(f"Limit names must be like 'minute', not {quota.name!r}.")
            if quota.limit < 1:
                raise ValueError(f"Limit {quota.name!r} must allow at least one request.")
            if quota.seconds < 1:
                raise ValueError(f"Limit {quota.name!r} needs a window of at least one second.")
        if len({quota.name for quota in quotas}) < len(quotas):
            raise ValueError("Limit names must differ: each names its own counts.")
        self.quotas = tuple(quotas)
        self.header = b", ".join(
            b'"%s";q=%d;w=%d' % (q.name.encode(), q.limit, q.seconds) for q in self.quotas
        )


class RateLimitMiddleware:
    """Limit requests under `prefixes` per client; answer 429 problems past a quota.

    Requests to `auth_routes` (`(method, path)` pairs: the routes that check or issue a
    credential) use `auth_limits` per client address; other requests under `prefixes`, except
    those at or below an `exempt` path, use `limits` per `key_func`.
    Each limited request costs one `store` call, whatever the number of quotas: it is counted
    in every quota if each allows it, and in none otherwise, so a request refused by any window
    uses no slot of the others.
    Storage errors let requests through (`fail_open`) or answer 503 with `Retry-After:
    unavailable_retry_after`; either way they are logged and counted in `storage_errors`.
    Leaving a failing Redis alone is the Redis client's job (its circuit breaker refuses
    commands at once for a while), so an outage costs no timeout per request here.
    The store (its strategy, its Redis client) belongs to the caller, who closes it.
    `on_refused` is called for each 429, `on_storage_error` for each storage error, a call the
    breaker refused included (metrics and alerts count them).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: Sequence[Quota],
        auth_limits: Sequence[Quota],
        store: QuotaStore,
        fail_open: bool,
        renderer: ProblemRenderer,
        key_func: Callable[[Scope], str],
        prefixes: Collection[str],
        exempt: Collection[str] = (),
        auth_routes: Collection[tuple[str, str]] = (),
        unavailable_retry_after: int = 1,
        on_refused: Callable[[], None] = lambda: None,
        on_storage_error: Callable[[], None] = lambda: None,
    ) -> None:
        if unavailable_retry_after < 1:
            raise ValueError("unavailable_retry_after must be at least one second.")
        auth_paths = [path for _, path in auth_routes]
        if not all(path.startswith("/") for path in (*prefixes, *exempt, *auth_paths)):
            raise ValueError(ENFORCE_PATH_PREFIX)
        self.app = app
        self.store = store
        self.policy = _Policy(limits)
        self.auth_policy = _Policy(auth_limits)
        self.fail_open = fail_open
        self.renderer = renderer
        self.key_func = key_func
        self.prefixes = tuple(prefixes)
        self.exempt = tuple(exempt)
        self.exempt_below = tuple(path.rstrip("/") + "/" for path in exempt)
        # The paths alone first: most requests are not to one, and skip building the pair.
        self.auth_paths = frozenset(auth_paths)
        self.auth_routes = frozenset(auth_routes)
        self.unavailable_retry_after = unavailable_retry_after
        self.on_refused = on_refused
        self.on_storage_error = on_storage_error
        # Failed storage calls in this process (`rate_limit_backend_errors_total` adds them up).
        self.storage_errors = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        path = route_path(scope)
        if path in self.auth_paths and (scope["method"], path) in self.auth_routes:
            policy, key = self.auth_policy, client_ip_key(scope)
        elif path.startswith(self.prefixes) and not (
            path in self.exempt or path.startswith(self.exempt_below)
        ):
            policy, key = self.policy, self.key_func(scope)
        else:
            await self.app(scope, receive, send)
            return

        try:
            decision = await self.store.hit(key, policy.quotas)
        except STORAGE_ERRORS as exc:
            await self._storage_failed(exc, scope, receive, send)
            return
        headers = _headers(policy, decision)
        if not decision.allowed:
            self.on_refused()
            await self._too_many(headers, scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)

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


def _headers(policy: _Policy, decision: Decision) -> list[tuple[bytes, bytes]]:
    refused = not decision.allowed
    remaining = 0 if refused else max(0, decision.remaining)
    # A refused request waits at least a second: `Retry-After: 0` would invite a retry storm.
    reset = max(1 if refused else 0, math.ceil(decision.reset_after))
    name = decision.quota.name.encode()
    return [
        (b"ratelimit-policy", policy.header),
        (b"ratelimit", b'"%s";r=%d;t=%d' % (name, remaining, reset)),
        (b"x-ratelimit-limit", b"%d" % decision.quota.limit),
        (b"x-ratelimit-remaining", b"%d" % remaining),
        (b"x-ratelimit-reset", b"%d" % reset),
    ]
