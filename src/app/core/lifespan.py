"""Start-up and shutdown: every client is created here, stored on `app.state`, then closed."""

import gc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import structlog
from fastapi import FastAPI

from app.auth.oidc import OidcVerifier
from app.core.config import Settings
from app.core.security import password_hasher_from
from app.db.session import create_engine, create_session_factory, safe_url
from app.infra.cache import create_cache
from app.infra.http import create_http_client
from app.infra.mail import create_mailer
from app.infra.redis import create_redis
from app.users import service as users_service
from app.users.schemas import normalize_email

log = structlog.get_logger(__name__)


async def _open_clients(app: FastAPI, settings: Settings, stack: AsyncExitStack) -> None:
    engine = create_engine(settings)
    stack.push_async_callback(engine.dispose)
    redis = create_redis(settings)
    if redis is not None:
        stack.push_async_callback(redis.aclose)
    http = create_http_client(settings)
    stack.push_async_callback(http.aclose)

    state = app.state
    state.engine = engine
    state.session_factory = create_session_factory(engine)
    state.redis = redis
    state.cache = create_cache(settings, redis)
    state.http = http
    state.password_hasher = password_hasher_from(settings)
    state.mailer = create_mailer(settings)
    state.oidc_verifier = (
        OidcVerifier.from_settings(settings, http) if settings.AUTH_PROVIDER == "oidc" else None
    )


async def _bootstrap_superuser(app: FastAPI, settings: Settings) -> None:
    if settings.FIRST_SUPERUSER_EMAIL is None or settings.FIRST_SUPERUSER_PASSWORD is None:
        return
    await users_service.ensure_superuser(
        session_factory=app.state.session_factory,
        hasher=app.state.password_hasher,
        email=normalize_email(settings.FIRST_SUPERUSER_EMAIL),
        password=settings.FIRST_SUPERUSER_PASSWORD.get_secret_value(),
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the database, Redis and HTTP clients for the life of the process, then close them."""
    settings: Settings = app.state.settings
    async with AsyncExitStack() as stack:
        await _open_clients(app, settings, stack)
        await _bootstrap_superuser(app, settings)
        log.info(
            "startup",
            environment=settings.ENVIRONMENT,
            database=safe_url(settings.DATABASE_URL),
            redis=app.state.redis is not None,
            auth_provider=settings.AUTH_PROVIDER,
        )
        # Objects made at start-up live for the whole process; freezing them keeps the garbage
        # collector from scanning them on every collection (measured: p99 fell ~5x on a peer).
        if settings.GC_FREEZE_AFTER_STARTUP:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            if settings.GC_FREEZE_AFTER_STARTUP:
                gc.unfreeze()
            log.info("shutdown")
