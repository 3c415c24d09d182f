"""The long-lived clients of one process, built once from settings into one frozen container.

`build_resources` only constructs: nothing connects until first use, so an app that is built
but never started holds no connection. The lifespan closes them (`close_resources`).
"""

import dataclasses
from contextlib import AsyncExitStack

import httpx2
from limits.aio.storage import Storage
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.security import PasswordHasher
from app.db.session import create_engine, create_session_factory
from app.infra.cache import Cache, create_cache
from app.infra.http import create_http_client
from app.infra.mail import Mailer, create_mailer
from app.infra.oidc import OidcVerifier
from app.infra.rate_limit_storage import create_rate_limit_storage
from app.infra.redis import create_redis


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Resources:
    """Everything a request may need that outlives it; read through `app.deps` only."""

    settings: Settings
    version: str
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    redis: Redis | None
    cache: Cache
    rate_limit_storage: Storage
    http: httpx2.AsyncClient
    mailer: Mailer
    password_hasher: PasswordHasher
    oidc_verifier: OidcVerifier | None

    def replace(self, **changes: object) -> "Resources":
        """Return a copy with some resources swapped (tests isolate the database this way)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def build_resources(settings: Settings, *, version: str) -> Resources:
    """Construct every long-lived client from its settings group; none connects yet."""
    namespace = settings.app.slug
    engine = create_engine(settings.database, application_name=settings.app.name)
    redis = create_redis(settings.redis)
    http = create_http_client(user_agent=f"{namespace}/{version}")
    return Resources(
        settings=settings,
        version=version,
        engine=engine,
        session_factory=create_session_factory(engine),
        redis=redis,
        cache=create_cache(settings.cache, redis, namespace=namespace),
        rate_limit_storage=create_rate_limit_storage(redis, namespace=namespace),
        http=http,
        mailer=create_mailer(settings.mail, environment=settings.app.environment),
        password_hasher=PasswordHasher.from_settings(settings.auth),
        oidc_verifier=(
            OidcVerifier.from_settings(settings.oidc, http)
            if settings.auth.provider == "oidc"
            else None
        ),
    )


async def close_resources(resources: Resources) -> None:
    """Close every client that holds connections, in the reverse order of construction."""
    async with AsyncExitStack() as stack:
        stack.push_async_callback(resources.engine.dispose)
        if resources.redis is not None:
            stack.push_async_callback(resources.redis.aclose)
        stack.push_async_callback(resources.http.aclose)
