"""The process's resources as typed dependencies: the only module that reads `app.state`.

Routes and dependencies ask for what they need by type (`SessionDep`, `CacheDep`, ...);
`attach_resources` stores the container when the app is built.
"""

from collections.abc import AsyncIterator
from typing import Annotated

import httpx2
from fastapi import Depends, FastAPI, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.errors import ServiceUnavailableError
from app.core.lifecycle import Lifecycle
from app.core.security import AccessTokenDecoder, PasswordHasher
from app.infra.cache import Cache
from app.infra.jobs import JobQueue
from app.infra.mail import Mailer
from app.infra.oidc import OidcVerifier
from app.resources import Resources

__all__ = [
    "AccessTokenDecoderDep",
    "CacheDep",
    "EngineDep",
    "HttpClientDep",
    "JobQueueDep",
    "LifecycleDep",
    "MailerDep",
    "OptionalOidcVerifierDep",
    "OptionalRedisDep",
    "PasswordHasherDep",
    "RedisDep",
    "ResourcesDep",
    "SessionDep",
    "SessionFactoryDep",
    "SettingsDep",
]


def attach_resources(app: FastAPI, resources: Resources) -> None:
    """Make `resources` the app's (tests swap in a copy with an isolated session factory)."""
    app.state.resources = resources


def resources_of(app: FastAPI) -> Resources:
    """Return the resources the app was built with."""
    resources: Resources = app.state.resources
    return resources


def settings_of(request: Request) -> Settings:
    """Return the app's settings without dependency resolution, for the hottest routes."""
    return resources_of(request.app).settings


# Each provider reads the container itself rather than depending on `get_resources`: one
# dependency fewer to resolve on every request.


async def get_resources(request: Request) -> Resources:
    """Return the process's resources."""
    return resources_of(request.app)


async def get_settings(request: Request) -> Settings:
    """Return the settings the app was built with (tests pass their own)."""
    return resources_of(request.app).settings


async def get_engine(request: Request) -> AsyncEngine:
    """Return the process's database engine."""
    return resources_of(request.app).engine


async def get_session_factory(request: Request) -> async_sessionmaker[AsyncSession]:
    """Return the factory of sessions outside the request's own (claims, releases)."""
    return resources_of(request.app).session_factory


# Requests by these methods only read: their sessions send no BEGIN and no COMMIT.
READ_ONLY_METHODS = frozenset({"GET", "HEAD"})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield one session per request: commit when the handler succeeds, roll back otherwise.

    GET and HEAD requests get a session without a transaction (see
    `db.session.create_read_session_factory`), unless an OIDC caller's first request, GET or
    not, creates their account (with a savepoint).
    """
    resources = resources_of(request.app)
    if request.method in READ_ONLY_METHODS and resources.settings.auth.provider != "oidc":
        factory = resources.read_session_factory
    else:
        factory = resources.session_factory
    async with factory() as session:
        try:
            yield session
        except Exception:
            await session.rollback()
            raise
        await session.commit()


async def get_optional_redis(request: Request) -> Redis | None:
    """Return the Redis client, or None when `REDIS_URL` is not set."""
    return resources_of(request.app).redis


async def get_redis(request: Request) -> Redis:
    """Return the Redis client; 503 when the route needs Redis and none is set."""
    redis = resources_of(request.app).redis
    if redis is None:
        raise ServiceUnavailableError("Redis is not configured (set REDIS_URL).")
    return redis


async def get_cache(request: Request) -> Cache:
    """Return the process's cache: Redis when `REDIS_URL` is set, else in memory."""
    return resources_of(request.app).cache


async def get_http_client(request: Request) -> httpx2.AsyncClient:
    """Return the process's outbound HTTP client."""
    return resources_of(request.app).http


async def get_mailer(request: Request) -> Mailer:
    """Return the configured mailer."""
    return resources_of(request.app).mailer


async def get_job_queue(request: Request) -> JobQueue:
    """Return the process's job queue (the broker the jobs go to)."""
    return resources_of(request.app).jobs


async def get_password_hasher(request: Request) -> PasswordHasher:
    """Return the process's password hasher (bounded worker threads)."""
    return resources_of(request.app).password_hasher


async def get_access_token_decoder(request: Request) -> AccessTokenDecoder:
    """Return the process's decoder of our own access tokens (it keeps recent valid ones)."""
    return resources_of(request.app).access_tokens


async def get_oidc_verifier(request: Request) -> OidcVerifier | None:
    """Return the external issuer's token verifier; None unless `AUTH_PROVIDER=oidc`."""
    return resources_of(request.app).oidc_verifier


async def get_lifecycle(request: Request) -> Lifecycle:
    """Return this process's lifecycle (is it draining before it stops?)."""
    return resources_of(request.app).lifecycle


ResourcesDep = Annotated[Resources, Depends(get_resources)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
SessionFactoryDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_session_factory)]
# scope="function": commit before the response is sent, so a failed commit is an error
# response rather than a success the client already received.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
OptionalRedisDep = Annotated[Redis | None, Depends(get_optional_redis)]
RedisDep = Annotated[Redis, Depends(get_redis)]
CacheDep = Annotated[Cache, Depends(get_cache)]
HttpClientDep = Annotated[httpx2.AsyncClient, Depends(get_http_client)]
MailerDep = Annotated[Mailer, Depends(get_mailer)]
JobQueueDep = Annotated[JobQueue, Depends(get_job_queue)]
PasswordHasherDep = Annotated[PasswordHasher, Depends(get_password_hasher)]
AccessTokenDecoderDep = Annotated[AccessTokenDecoder, Depends(get_access_token_decoder)]
OptionalOidcVerifierDep = Annotated[OidcVerifier | None, Depends(get_oidc_verifier)]
LifecycleDep = Annotated[Lifecycle, Depends(get_lifecycle)]
