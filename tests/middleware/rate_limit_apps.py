"""Shared by the rate-limit tests: an inner app that counts calls, a limiter in front of it,
clients from given addresses, and access tokens to key by user.
"""

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from httpx2 import ASGITransport, AsyncClient, Response
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.core.config import Settings
from app.core.quotas import Quota
from app.core.security import create_access_token
from app.infra.rate_limit_storage import MemoryQuotaStore
from app.middleware.rate_limit import RateLimitMiddleware
from app.middleware.rate_limit_keys import client_ip_key
from tests.middleware.apps import RENDERER

CLIENT = ("203.0.113.9", 4711)
OTHER_CLIENT = ("198.51.100.7", 4711)
AUTH_PATHS = (
    "/api/v1/auth/login",
    "/auth/login",
    "/api/v1/auth/password-reset",
    "/api/v1/auth/password-reset/confirm",
)
UNLIMITED_PATHS = ("/health", "/metrics", "/api/v1/health", "/api/v1/health/live", "/docs")
# Where the real app's routes put the API and its exempt probes.
PATHS: dict[str, Any] = {
    "prefixes": ("/api/",),
    "exempt": ("/api/v1/health",),
    "auth_routes": [("POST", path) for path in AUTH_PATHS] + [("DELETE", "/api/v1/me")],
}


class Calls:
    """The inner app: counts the requests that reached it."""

    def __init__(self) -> None:
        self.count = 0

    async def endpoint(self, request: Request) -> JSONResponse:
        self.count += 1
        return JSONResponse({"path": request.url.path})

    def app(self) -> Starlette:
        get_paths = ("/api/v1/items", "/api/v1/healthy", *UNLIMITED_PATHS)
        routes = [Route(path, self.endpoint) for path in get_paths]
        routes += [Route(path, self.endpoint, methods=["GET", "POST"]) for path in AUTH_PATHS]
        routes += [Route("/api/v1/me", self.endpoint, methods=["GET", "DELETE"])]
        return Starlette(routes=routes)


def middleware(
    calls: Calls | None = None,
    *,
    per_minute: int = 3,
    per_hour: int = 100,
    per_auth: int = 2,
    **options: Any,
) -> RateLimitMiddleware:
    strategy = options.pop("strategy", "moving-window")
    options.setdefault("store", MemoryQuotaStore(strategy))
    options.setdefault("fail_open", True)
    options.setdefault("key_func", client_ip_key)
    return RateLimitMiddleware(
        (calls or Calls()).app(),
        limits=(Quota("minute", per_minute, 60), Quota("hour", per_hour, 3600)),
        auth_limits=(Quota("auth", per_auth, 60),),
        renderer=RENDERER,
        **{**PATHS, **options},
    )


def client(app: Any, address: tuple[str, int] = CLIENT) -> AsyncClient:
    return AsyncClient(transport=ASGITransport(app=app, client=address), base_url="http://test")


async def get_many(app: Any, path: str, times: int, **kwargs: Any) -> list[Response]:
    async with client(app, **kwargs) as c:
        return [await c.get(path) for _ in range(times)]


def seconds(value: str) -> int:
    assert re.fullmatch(r"\d+", value), value
    return int(value)


def token(settings: Settings, subject: uuid.UUID, *, issued: datetime | None = None) -> bytes:
    now = issued or datetime.now(UTC)
    access = create_access_token(
        subject=subject, session_id=uuid.uuid4(), auth=settings.auth, now=now
    )
    return b"Bearer " + access.token.encode()
