"""Who is calling: bearer access tokens (ours or an OIDC issuer's) and API keys."""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.security import APIKeyHeader, HTTPBearer
from fastapi.security.base import SecurityBase
from sqlalchemy.ext.asyncio import AsyncSession

from app.api_keys import service as api_keys_service
from app.api_keys.models import ApiKey
from app.auth import provisioning
from app.auth import service as auth_service
from app.auth.exceptions import InsufficientScope, InvalidToken, NotAuthenticated, SuperuserRequired
from app.auth.scopes import ALL_SCOPES, Scope
from app.auth.throttle import LoginThrottle, create_login_throttle
from app.core.clients import client_identity
from app.core.logging import bind_user
from app.core.security import AccessTokenDecoder, InvalidTokenError, PasswordHasher
from app.deps import OptionalRedisDep, SessionDep, SettingsDep, resources_of
from app.infra.oidc import OidcVerifier
from app.users.models import User

bearer_scheme = HTTPBearer(auto_error=False, description="An access token from /auth/login.")
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key.")
# The same header described for AUTH_PROVIDER=oidc, where this service has no login route.
_issuer_bearer = HTTPBearer(auto_error=False, description="An access token from the OIDC issuer.")


def security_schemes(provider: str) -> tuple[SecurityBase, ...]:
    """What `get_principal` accepts, as the document lists them (`authenticates`), in order."""
    return (bearer_scheme if provider == "local" else _issuer_bearer, api_key_scheme)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller, what it may do, and how it proved who it is.

    `authenticated_at` is when the person last proved who they are (their login), for tokens;
    `api_key` is the key the request came with, for API keys.
    """

    user: User
    scopes: frozenset[str]
    method: Literal["access_token", "api_key", "oidc"]
    session_id: uuid.UUID | None = None
    authenticated_at: datetime | None = None
    api_key: ApiKey | None = None


async def _from_oidc_token(
    token: str, verifier: OidcVerifier, hasher: PasswordHasher, session: AsyncSession
) -> Principal:
    try:
        identity = await verifier.verify(token)
    except InvalidTokenError as exc:
        raise InvalidToken from exc
    user = await provisioning.user_for_identity(session=session, hasher=hasher, identity=identity)
    return Principal(
        user=user,
        scopes=ALL_SCOPES,
        method="oidc",
        authenticated_at=identity.authenticated_at,
    )


def _login_time(claims: dict[str, Any]) -> datetime | None:
    moment = claims.get("auth_time")
    return None if moment is None else datetime.fromtimestamp(moment, UTC)


async def _from_access_token(
    token: str, decoder: AccessTokenDecoder, session: AsyncSession
) -> Principal:
    try:
        claims = decoder.decode(token)
    except InvalidTokenError as exc:
        raise InvalidToken from exc
    # The decoder checked every claim read here (`core.security._check_claims`): a token with
    # a wrong-typed claim was refused above, so these cannot raise.
    user_id, session_id = uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"])
    # The session is checked on every request: logout, revocation and deactivation end the
    # token at once, not when it expires.
    user = await auth_service.session_user(session=session, user_id=user_id, session_id=session_id)
    if user is None:
        raise InvalidToken
    return Principal(
        user=user,
        scopes=ALL_SCOPES,
        method="access_token",
        session_id=session_id,
        authenticated_at=_login_time(claims),
    )


async def get_principal(request: Request, *, session: SessionDep) -> Principal:
    """Authenticate the request with `X-API-Key` or a bearer token, or raise 401.

    From here on, the request's log lines (its access line too) name the user. The security
    schemes, decoder, verifier and hasher are called or read here, not taken as dependencies:
    FastAPI resolves every dependency node on every authenticated request (the two schemes
    cost ~170 Python calls a request). The document still lists the schemes on every
    operation that authenticates (`authenticates`, `security_schemes`).
    """
    bearer = await bearer_scheme(request)
    api_key = await api_key_scheme(request)
    resources = resources_of(request.app)
    verifier = resources.oidc_verifier
    if "x-api-key" in request.headers and "authorization" in request.headers:
        # Which of two credentials acts would be a guess, and a bad one beside a good one
        # (a token of another scheme, an empty header, or none at all) would pass unnoticed.
        raise InvalidToken("Send one credential: a bearer token or an X-API-Key, not both.")
    if api_key:
        found = await api_keys_service.authenticate(session=session, key=api_key)
        if found is None:
            raise InvalidToken("The API key is invalid, revoked or expired.")
        key, user = found
        principal = Principal(
            user=user, scopes=frozenset(key.scopes), method="api_key", api_key=key
        )
    elif bearer is None:
        raise NotAuthenticated("Send a bearer token or an X-API-Key header.")
    elif verifier is not None:  # AUTH_PROVIDER=oidc: the issuer's tokens, never ours
        hasher = resources.password_hasher
        principal = await _from_oidc_token(bearer.credentials, verifier, hasher, session)
    else:
        principal = await _from_access_token(bearer.credentials, resources.access_tokens, session)
    bind_user(str(principal.user.id))
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


class RequireScopes:
    """A dependency that returns the principal, or 403 when it lacks one of `scopes`.

    Every route that acts for a caller declares its scopes this way, so an API key can never
    do more than it was given: `Annotated[Principal, Depends(RequireScopes(Scope.USERS_READ))]`.
    With `superuser=True` the caller must also be a superuser.
    """

    def __init__(self, *scopes: Scope, superuser: bool = False) -> None:
        self.scopes = frozenset(scopes)
        self.superuser = superuser

    async def __call__(self, principal: CurrentPrincipal) -> Principal:
        """Check the principal's scopes (and superuser status when asked)."""
        require_scopes(principal, self.scopes)
        if self.superuser and not principal.user.is_superuser:
            raise SuperuserRequired("Only superusers may do this.")
        return principal


def authenticates(dependant: Dependant) -> bool:
    """Whether a route's dependencies (`route.dependant`) authenticate the caller anywhere."""
    return any(sub.call is get_principal or authenticates(sub) for sub in dependant.dependencies)


def checks_scopes(dependant: Dependant) -> bool:
    """Whether a route's dependencies (`route.dependant`) check the caller's scopes anywhere."""
    return any(
        isinstance(sub.call, RequireScopes) or checks_scopes(sub) for sub in dependant.dependencies
    )


def require_scopes(principal: Principal, scopes: Iterable[str]) -> None:
    """Raise 403 `insufficient_scope` unless the principal holds every one of `scopes`."""
    missing = sorted(set(scopes) - principal.scopes)
    if missing:
        raise InsufficientScope(f"These credentials lack the scope(s): {', '.join(missing)}.")


def client_address(request: Request) -> str:
    """Return the client as the server (or the proxy-headers layer) resolved it.

    An IPv6 client is its /64 (`core.clients`): one subscriber holds all its addresses.
    """
    return client_identity(request.client.host) if request.client else "unknown"


async def get_login_throttle(
    request: Request, settings: SettingsDep, session: SessionDep, redis: OptionalRedisDep
) -> LoginThrottle:
    """Return this client's login throttle: Redis when configured, else the request's session."""
    return create_login_throttle(
        settings.auth, session=session, redis=redis, client=client_address(request)
    )


async def get_login_throttle_state(
    request: Request, settings: SettingsDep, session: SessionDep, redis: OptionalRedisDep
) -> LoginThrottle:
    """Return the login throttle's stores for a route that checks no password, to `forget` with.

    Another dependency than `get_login_throttle`, which marks a route as one that checks a
    password (the rate limiter's auth quota is found from it).
    """
    return await get_login_throttle(request, settings, session, redis)


UsersReader = Annotated[Principal, Depends(RequireScopes(Scope.USERS_READ))]
UsersWriter = Annotated[Principal, Depends(RequireScopes(Scope.USERS_WRITE))]
AdminReader = Annotated[Principal, Depends(RequireScopes(Scope.USERS_READ, superuser=True))]
AdminWriter = Annotated[Principal, Depends(RequireScopes(Scope.USERS_WRITE, superuser=True))]
LoginThrottleDep = Annotated[LoginThrottle, Depends(get_login_throttle)]
LoginThrottleStateDep = Annotated[LoginThrottle, Depends(get_login_throttle_state)]
