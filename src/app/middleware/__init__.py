"""The middleware stack, outermost first: read `install` to know the order a request takes."""

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from app.core.config import Settings
from app.core.errors import ProblemRenderer
from app.middleware.access_log import AccessLogMiddleware
from app.middleware.request_id import RequestIdMiddleware
from app.middleware.server_errors import ServerErrorMiddleware
from app.middleware.trusted_host import TrustedHostMiddleware

CORS_EXPOSE_HEADERS = (
    "X-Request-ID",
    "X-Process-Time",
    "Retry-After",
    "ETag",
    "Location",
    "Link",
    "RateLimit",
    "RateLimit-Policy",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
)


def install(app: FastAPI, settings: Settings, renderer: ProblemRenderer) -> None:
    """Install the pure-ASGI middleware stack; the list below runs outermost first."""
    stack = [
        Middleware(RequestIdMiddleware),
        Middleware(AccessLogMiddleware),
        Middleware(ServerErrorMiddleware, renderer=renderer),
        Middleware(TrustedHostMiddleware, allowed_hosts=settings.ALLOWED_HOSTS, renderer=renderer),
    ]
    if settings.CORS_ALLOW_ORIGINS:
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.CORS_ALLOW_ORIGINS,
                allow_credentials=settings.CORS_ALLOW_CREDENTIALS,
                allow_methods=settings.CORS_ALLOW_METHODS,
                allow_headers=settings.CORS_ALLOW_HEADERS,
                expose_headers=CORS_EXPOSE_HEADERS,
            ),
        )
    # Starlette builds the stack from `user_middleware`, first entry outermost.
    app.user_middleware[0:0] = stack
