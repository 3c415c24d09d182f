"""The request pipeline: settings turned into middleware options, installed outermost first.

Read `install_middleware` to know the order a request takes. The middleware classes know only
their constructor arguments; this module is where settings, route paths and clients meet them.
"""

import math
from collections.abc import Callable, Collection
from typing import Any

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from starlette.middleware import Middleware

from app.api import RoutePaths
from app.core.config import Settings
from app.core.docs_ui import DOCS_PATHS
from app.core.lifecycle import Lifecycle
from app.core.problems import ProblemRenderer
from app.core.quotas import Quota, QuotaStore
from app.core.security import AccessTokenDecoder
from app.idempotency.routing import REPLAYED_HEADER
from app.middleware.access_log import AccessLogMiddleware
from app.middleware.body_limit import BodyLimitMiddleware
from app.middleware.body_read import BodyReadMiddleware
from app.middleware.compression import CompressionMiddleware
from app.middleware.content_validation import ContentValidationMiddleware
from app.middleware.cors import CorsMiddleware
from app.middleware.country_block import CountryBlockMiddleware
from app.middleware.deadline import DeadlineMiddleware
from app.middleware.drain import DrainMiddleware
from app.middleware.load_shed import LoadShedMiddleware
from app.middleware.metrics import MetricsMiddleware, RequestObserver
from app.middleware.proxy_headers import ProxyHeadersMiddleware
from app.middleware.rate_limit import RateLimitMiddleware
from app.middleware.rate_limit_keys import ClientKey
from app.middleware.request_id import RequestIdMiddleware
from app.middleware.security_headers import DOCS_CSP, SecurityHeadersMiddleware
from app.middleware.server_errors import ServerErrorMiddleware
from app.middleware.tracing import TracingMiddleware
from app.middleware.trusted_host import TrustedHostMiddleware
from app.observability.events import Events
from app.observability.tracing import server_tracer, tag_request_id

GZIP_MINIMUM_BYTES = 1024
# Level 6 compresses nearly as well as 9 at a fraction of the CPU.
GZIP_LEVEL = 6
CORS_EXPOSE_HEADERS = (
    "X-Request-ID",
    "X-Process-Time",
    "Retry-After",
    "ETag",
    "Location",
    "Link",
    "Idempotent-Replayed",
    "RateLimit",
    "RateLimit-Policy",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
)


def _cors(settings: Settings, renderer: ProblemRenderer) -> list[Middleware]:
    http = settings.http
    if not http.cors_allow_origins:
        return []
    options: dict[str, Any] = {
        "allow_origins": http.cors_allow_origins,
        "allow_credentials": http.cors_allow_credentials,
        "allow_methods": http.cors_allow_methods,
        "allow_headers": http.cors_allow_headers,
    }
    return [
        Middleware(CorsMiddleware, renderer=renderer, expose_headers=CORS_EXPOSE_HEADERS, **options)
    ]


def _proxy_headers(settings: Settings) -> list[Middleware]:
    if not settings.http.trust_proxy_headers:
        return []
    return [Middleware(ProxyHeadersMiddleware, trusted_proxies=settings.http.trusted_proxies)]


def _trusted_hosts(
    settings: Settings, renderer: ProblemRenderer, paths: RoutePaths
) -> list[Middleware]:
    hosts = settings.http.allowed_hosts
    if "*" in hosts:
        return []  # every host allowed: a layer that checks nothing costs every request
    # Probes reach a pod by its address, whatever ALLOWED_HOSTS names.
    options: dict[str, Any] = {"allowed_hosts": hosts, "exempt": paths.probes}
    return [Middleware(TrustedHostMiddleware, renderer=renderer, **options)]


def security_headers_options(settings: Settings, *, paths: RoutePaths) -> dict[str, Any]:
    """Return `SecurityHeadersMiddleware` options: HSTS in production only, CSP unless off."""
    http = settings.http
    return {
        # Only in production: a browser remembers HSTS, and development runs on plain HTTP.
        "hsts": http.hsts_enabled and settings.app.environment == "production",
        "csp": http.csp if http.csp_enabled else None,
        "docs_csp": DOCS_CSP if http.csp_enabled else None,
        "docs_paths": DOCS_PATHS if settings.docs_enabled else (),
        "no_store_prefixes": paths.api_roots,
    }


def rate_limit_options(
    settings: Settings,
    *,
    renderer: ProblemRenderer,
    storage: QuotaStore,
    paths: RoutePaths,
    events: Events | None = None,
    token_subject: Callable[[str], str | None] | None = None,
) -> dict[str, Any]:
    """Return `RateLimitMiddleware` options from `RATE_LIMIT_*`, the route paths and `events`.

    `token_subject` reads an access token's subject (the process's `AccessTokenDecoder`,
    which the authentication shares, so a token is checked once); a new decoder by default.
    """
    limits, auth = settings.rate_limit, settings.auth
    # Only our own tokens can be checked here; OIDC callers are limited per address.
    subject = None
    if auth.provider == "local":
        subject = token_subject or AccessTokenDecoder(auth).subject
    return {
        "limits": (
            Quota("minute", limits.per_minute + limits.burst, 60),
            Quota("hour", limits.per_hour, 3600),
        ),
        "auth_limits": (Quota("auth", limits.auth_per_minute, 60),),
        # The store was built for `RATE_LIMIT_STRATEGY` (`resources.build_resources`).
        "store": storage,
        "fail_open": limits.fail_open,
        # Fail-closed 503s: Redis is retried once its circuit breaker's cool-down is over.
        "unavailable_retry_after": math.ceil(settings.redis.breaker_cool_down_seconds),
        "renderer": renderer,
        "key_func": ClientKey(subject),
        "prefixes": paths.api_roots,
        "exempt": paths.unlimited,
        "auth_routes": paths.credentials,
        **(
            {"on_refused": events.rate_limited, "on_storage_error": events.rate_limit_backend_error}
            if events is not None
            else {}
        ),
    }


def _rate_limit(settings: Settings, **options: Any) -> list[Middleware]:
    if not settings.rate_limit.enabled:
        return []
    return [Middleware(RateLimitMiddleware, **rate_limit_options(settings, **options))]


def _tracing(provider: TracerProvider | None, paths: RoutePaths) -> list[Middleware]:
    if provider is None:
        return []
    return [Middleware(TracingMiddleware, tracer=server_tracer(provider), untraced=paths.untraced)]


def _observing(
    provider: TracerProvider | None, observer: RequestObserver | None, paths: RoutePaths
) -> list[Middleware]:
    # Tracing outermost: every layer inside, and its log lines, see the span. Metrics outside
    # every layer that may refuse a request, so they count those refusals too.
    tag = tag_request_id if provider is not None else None
    metrics = []
    if observer is not None:
        metrics = [
            Middleware(MetricsMiddleware, observer=observer, replayed_header=REPLAYED_HEADER)
        ]
    return [
        *_tracing(provider, paths),
        Middleware(RequestIdMiddleware, on_request_id=tag),
        *metrics,
    ]


def _load_shedding(
    settings: Settings, renderer: ProblemRenderer, paths: RoutePaths
) -> list[Middleware]:
    server = settings.server
    if not server.max_concurrent_requests:
        return []
    options: dict[str, Any] = {
        "max_concurrent": server.max_concurrent_requests,
        "max_queued": server.request_queue_size,
        "queue_timeout": server.request_queue_timeout_seconds,
        "exempt": paths.probes,
    }
    return [Middleware(LoadShedMiddleware, renderer=renderer, **options)]


def _resilience(
    settings: Settings, renderer: ProblemRenderer, paths: RoutePaths, lifecycle: Lifecycle | None
) -> list[Middleware]:
    """Read bodies, shed load past the cap, close while draining, stop at the deadline."""
    drain = [Middleware(DrainMiddleware, draining=lifecycle.is_draining)] if lifecycle else []
    seconds = settings.server.request_timeout_seconds
    return [
        # Outermost of these: a slow body holds no slot, and its time is not the deadline's.
        Middleware(
            BodyReadMiddleware,
            seconds=settings.server.request_body_timeout_seconds,
            buffer_bytes=settings.http.max_request_body_bytes,
            renderer=renderer,
        ),
        *_load_shedding(settings, renderer, paths),
        *drain,
        Middleware(DeadlineMiddleware, seconds=seconds, renderer=renderer),
    ]


def _country_block(
    settings: Settings,
    renderer: ProblemRenderer,
    paths: RoutePaths,
    country_of: Callable[[str], str | None] | None,
) -> list[Middleware]:
    if country_of is None:
        return []  # GEOIP_DATABASE_PATH unset
    geoip = settings.geoip
    options: dict[str, Any] = {
        "allowed": geoip.allowed_countries,
        "blocked": geoip.blocked_countries,
        "block_unknown": geoip.unknown == "block",
        "exempt": paths.probes,
    }
    return [Middleware(CountryBlockMiddleware, country_of=country_of, renderer=renderer, **options)]


def install_middleware(
    app: FastAPI,
    settings: Settings,
    *,
    renderer: ProblemRenderer,
    rate_limit_storage: QuotaStore,
    paths: RoutePaths,
    http_metrics: RequestObserver | None = None,
    events: Events | None = None,
    tracer_provider: TracerProvider | None = None,
    lifecycle: Lifecycle | None = None,
    country_of: Callable[[str], str | None] | None = None,
    token_subject: Callable[[str], str | None] | None = None,
    body_media_types: Callable[[str, str], Collection[str] | None] | None = None,
    single_value_parameters: Callable[[str, str], Collection[str]] | None = None,
) -> None:
    """Install the pure-ASGI middleware stack; the list below runs outermost first.

    Layers that resolve the client (proxy headers) sit inside the ones that report it (access
    log, security headers): those read the scope when the response starts, after resolution.
    """
    stack = [
        *_observing(tracer_provider, http_metrics, paths),
        # Timings only for a developer: they tell an attacker which emails have accounts.
        Middleware(AccessLogMiddleware, process_time_header=settings.app.environment == "local"),
        # Outside CORS, which answers preflights itself: those are hardened like the rest.
        Middleware(
            SecurityHeadersMiddleware,
            **security_headers_options(settings, paths=paths),
        ),
        # Outside every layer that may answer (server errors, overload, deadline, drain): a
        # browser reads a 500 or a 503 and its Retry-After only with the CORS headers on it.
        *_cors(settings, renderer),
        Middleware(ServerErrorMiddleware, renderer=renderer),
        *_resilience(settings, renderer, paths, lifecycle),
        *_proxy_headers(settings),
        *_trusted_hosts(settings, renderer, paths),
        # After proxy headers: the country of the client, not of the proxy.
        *_country_block(settings, renderer, paths, country_of),
        Middleware(
            ContentValidationMiddleware,
            renderer=renderer,
            documented=body_media_types,
            single_valued=single_value_parameters,
        ),
        # Starlette's own limiter, inside our stack so its 413 is a problem with a request id.
        Middleware(
            BodyLimitMiddleware,
            max_body_size=settings.http.max_request_body_bytes,
            renderer=renderer,
        ),
        *_rate_limit(
            settings,
            renderer=renderer,
            storage=rate_limit_storage,
            paths=paths,
            events=events,
            token_subject=token_subject,
        ),
        Middleware(
            CompressionMiddleware, minimum_size=GZIP_MINIMUM_BYTES, compresslevel=GZIP_LEVEL
        ),
    ]
    # Starlette builds the stack from `user_middleware`, first entry outermost.
    app.user_middleware[0:0] = stack
