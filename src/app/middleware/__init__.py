"""The middleware stack, outermost first: read `install` to know the order a request takes."""

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from app.core.config import Settings
from app.core.problems import ProblemRenderer
from app.middleware.access_log import AccessLogMiddleware
from app.middleware.compression import CompressionMiddleware
from app.middleware.content_validation import BodyLimitMiddleware, ContentValidationMiddleware
from app.middleware.proxy_headers import ProxyHeadersMiddleware
from app.middleware.rate_limit import RateLimitMiddleware, rate_limit_options
from app.middleware.request_id import RequestIdMiddleware
from app.middleware.security_headers import SecurityHeadersMiddleware, security_headers_options
from app.middleware.server_errors import ServerErrorMiddleware
from app.middleware.trusted_host import TrustedHostMiddleware

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


def _cors(settings: Settings) -> list[Middleware]:
    if not settings.CORS_ALLOW_ORIGINS:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=settings.CORS_ALLOW_ORIGINS,
            allow_credentials=settings.CORS_ALLOW_CREDENTIALS,
            allow_methods=settings.CORS_ALLOW_METHODS,
            allow_headers=settings.CORS_ALLOW_HEADERS,
            expose_headers=CORS_EXPOSE_HEADERS,
        )
    ]


def _proxy_headers(settings: Settings) -> list[Middleware]:
    if not settings.TRUST_PROXY_HEADERS:
        return []
    return [Middleware(ProxyHeadersMiddleware, trusted_proxies=settings.TRUSTED_PROXIES)]


def _trusted_hosts(settings: Settings, renderer: ProblemRenderer) -> list[Middleware]:
    if "*" in settings.ALLOWED_HOSTS:
        return []  # every host allowed: a layer that checks nothing costs every request
    return [
        Middleware(TrustedHostMiddleware, allowed_hosts=settings.ALLOWED_HOSTS, renderer=renderer)
    ]


def _rate_limit(settings: Settings, renderer: ProblemRenderer) -> list[Middleware]:
    if not settings.RATE_LIMIT_ENABLED:
        return []
    return [Middleware(RateLimitMiddleware, **rate_limit_options(settings, renderer))]


def install(app: FastAPI, settings: Settings, renderer: ProblemRenderer) -> None:
    """Install the pure-ASGI middleware stack; the list below runs outermost first.

    Layers that resolve the client (proxy headers) sit inside the ones that report it (access
    log, security headers): those read the scope when the response starts, after resolution.
    """
    stack = [
        Middleware(RequestIdMiddleware),
        Middleware(AccessLogMiddleware),
        Middleware(SecurityHeadersMiddleware, **security_headers_options(settings)),
        Middleware(ServerErrorMiddleware, renderer=renderer),
        *_proxy_headers(settings),
        *_trusted_hosts(settings, renderer),
        *_cors(settings),
        Middleware(ContentValidationMiddleware, renderer=renderer),
        # Starlette's own limiter, inside our stack so its 413 is a problem with a request id.
        Middleware(
            BodyLimitMiddleware, max_body_size=settings.MAX_REQUEST_BODY_BYTES, renderer=renderer
        ),
        *_rate_limit(settings, renderer),
        Middleware(
            CompressionMiddleware, minimum_size=GZIP_MINIMUM_BYTES, compresslevel=GZIP_LEVEL
        ),
    ]
    # Starlette builds the stack from `user_middleware`, first entry outermost.
    app.user_middleware[0:0] = stack
