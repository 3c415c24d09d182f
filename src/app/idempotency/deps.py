"""The Idempotency-Key dependency: claim the key, or answer with the stored response.

A route opts in with `dependencies=[Idempotent]` (or a parameter `_: IdempotencyKeyDep`) on
a router built with `route_class=IdempotentRoute`. Requests without the header run as usual.
"""

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated

import structlog
from fastapi import Depends, Header, Request, Response
from fastapi.params import Depends as DependsParam
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.deps import CurrentPrincipal
from app.db.base import utcnow
from app.deps import SessionDep, resources_of
from app.idempotency import service
from app.idempotency.exceptions import (
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
)
from app.idempotency.locks import claim_lock
from app.idempotency.models import MAX_KEY_LENGTH
from app.idempotency.routing import (
    IDEMPOTENCY_HEADER,
    REPLAYED_HEADER,
    SCOPE_KEY,
    Claim,
    IdempotencyState,
    IdempotentRoute,
    Replay,
)
from app.idempotency.service import Fingerprint, StoredResponse

__all__ = ["IdempotencyKeyDep", "Idempotent", "IdempotentRoute", "idempotency_key"]

log = structlog.get_logger(__name__)


async def _release_unfinished_claim(request: Request) -> AsyncIterator[IdempotencyState]:
    """Free the key once the request is over unless its response was committed with its work.

    Request scope: this runs after the request's session has committed or rolled back, so on
    SQLite the release does not wait for the write lock that session held.
    """
    state = request.scope.get(SCOPE_KEY)
    if not isinstance(state, IdempotencyState):
        raise RuntimeError(  # a wiring mistake: a 500 the first time the route is tried
            "An idempotent route needs route_class=IdempotentRoute on its router."
        )
    factory = resources_of(request.app).session_factory
    try:
        yield state
    except BaseException:
        await _release(factory, state)
        raise
    if not state.completed:
        await _release(factory, state)


async def _release(factory: async_sessionmaker[AsyncSession], state: IdempotencyState) -> None:
    if state.claim is None:
        return
    try:
        async with factory() as session:
            await service.release(session=session, claim_id=state.claim.record_id)
            await session.commit()
    except Exception as exc:  # noqa: BLE001 - whatever failed, the request's own error stands
        # Any error: the driver's, a refused connection, a timeout. Raising it here would
        # replace the request's error with this one; the claim is freed when its lease ends.
        log.warning("idempotency_release_failed", error=type(exc).__name__)


# What `_valid_key` accepts, for the schema: 1 to 255 characters, bare or in double quotes;
# `""` is the draft's empty string, so no key.
KEY_PATTERN = rf'^(?!""$)(.{{1,{MAX_KEY_LENGTH}}}|".{{1,{MAX_KEY_LENGTH}}}")$'


def _valid_key(value: str) -> str:
    # The draft sends the key as a structured-field string ("..."); bare tokens are common too.
    if len(value) > 1 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not value or len(value) > MAX_KEY_LENGTH:
        raise InvalidIdempotencyKey(
            f"The Idempotency-Key header must be 1 to {MAX_KEY_LENGTH} characters long."
        )
    return value


def _replay(stored: StoredResponse) -> Response:
    headers = {**stored.headers, REPLAYED_HEADER: "true"}
    return Response(content=stored.body, status_code=stored.status_code, headers=headers)


async def _claim(
    factory: async_sessionmaker[AsyncSession],
    *,
    redis: Redis | None,
    user_id: uuid.UUID,
    key: str,
    fingerprint: Fingerprint,
    ttl: timedelta,
    lease: timedelta,
) -> uuid.UUID:
    """Claim the key in a short transaction of its own; raise `Replay`, 409 or 422 otherwise."""
    now = utcnow()
    async with (
        claim_lock(redis, user_id=user_id, key=key) as locked,
        factory() as session,
    ):
        if locked:
            record, claimed = await service.claim(
                session=session,
                user_id=user_id,
                key=key,
                fingerprint=fingerprint,
                now=now,
                ttl=ttl,
                lease=lease,
            )
            await session.commit()  # visible to every worker before the route does any work
        else:
            # Another worker is claiming this very key: answer from what it has stored, if any.
            found = await service.get(session=session, user_id=user_id, key=key)
            if found is None or service.is_replaceable(found, now, lease=lease):
                raise IdempotencyKeyInProgress
            record, claimed = found, False
    if claimed:
        return record.id
    raise Replay(_replay(service.stored_response(record, fingerprint)))


async def idempotency_key(
    request: Request,
    *,
    principal: CurrentPrincipal,
    session: SessionDep,
    state: Annotated[IdempotencyState, Depends(_release_unfinished_claim)],
    key: Annotated[
        str | None,
        Header(
            alias=IDEMPOTENCY_HEADER,
            description="Any unique string (1 to 255 characters) that makes a retry safe; "
            'the quoted form of the IETF draft ("...") is read too.',
            json_schema_extra={"pattern": KEY_PATTERN},
        ),
    ] = None,
) -> str | None:
    """Claim the request's Idempotency-Key, or answer with the response stored for it.

    The answer for a key that is taken (its stored response, 409 or 422) is only given once
    every other dependency of the route has run: a caller the route refuses (an API key
    without its scope) never receives what another request stored.
    """
    if key is None:
        return None
    # The clients are read from the app's resources, not taken as dependencies: every route
    # that opts in resolves each dependency on every request, with a key or without.
    resources = resources_of(request.app)
    settings = resources.settings
    key = _valid_key(key)
    url = request.url
    fingerprint = Fingerprint.of(
        method=request.method,
        path=f"{url.path}?{url.query}" if url.query else url.path,
        body=await request.body(),
    )
    # So far the request's transaction only authenticated the caller. End it before claiming:
    # on SQLite it holds the single write lock, which the claim's connection would wait for,
    # and everywhere it holds a pooled connection while the claim needs another one.
    await session.commit()
    try:
        record_id = await _claim(
            resources.session_factory,
            redis=resources.redis,
            user_id=principal.user.id,
            key=key,
            fingerprint=fingerprint,
            ttl=timedelta(seconds=settings.api.idempotency_ttl_seconds),
            # No request runs past its deadline: a claim older than twice that was abandoned
            # (its worker died, or the database was down when it failed to release it).
            lease=timedelta(seconds=2 * settings.server.request_timeout_seconds),
        )
    except (Replay, IdempotencyKeyInProgress, IdempotencyKeyReused) as taken:
        state.answer = taken  # raised by the route once it has authorized the caller
        return key
    state.claim = Claim(record_id=record_id, session=session)
    return key


# `dependencies=[Idempotent]`, or a parameter `_: IdempotencyKeyDep` to read the key.
Idempotent: DependsParam = Depends(idempotency_key)
IdempotencyKeyDep = Annotated[str | None, Depends(idempotency_key)]
