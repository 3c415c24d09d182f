"""API key endpoints: create (the key is shown once), list and revoke."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from app.api_keys import service as api_keys_service
from app.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyPage, ApiKeyRead
from app.auth import flows
from app.auth.deps import Principal, RequireScopes, require_scopes
from app.auth.proof import IdentityCheckDep
from app.auth.scopes import Scope
from app.core.openapi import problem_responses, response_headers
from app.core.routing import StrictBodyRoute
from app.core.types import Uuid
from app.core.urls import url_for
from app.db.pagination import PageQuery
from app.deps import SessionDep, SettingsDep

router = APIRouter(prefix="/api-keys", tags=["api keys"], route_class=StrictBodyRoute)
# POST routes that issue credentials: the rate limiter gives them its auth quota.
CREDENTIAL_PATHS = ("",)

Reader = Annotated[Principal, Depends(RequireScopes(Scope.API_KEYS_READ))]
Writer = Annotated[Principal, Depends(RequireScopes(Scope.API_KEYS_WRITE))]


@router.post(
    "", status_code=status.HTTP_201_CREATED, responses=problem_responses(401, 403, 422, 429)
)
async def create_api_key(
    *,
    body: ApiKeyCreate,
    request: Request,
    response: Response,
    principal: Writer,
    session: SessionDep,
    settings: SettingsDep,
    identity: IdentityCheckDep,
) -> ApiKeyCreated:
    """Create a key; copy it from this response, it is never shown again.

    From a session it needs `current_password` or a login of the last few minutes. A key
    never gets more than its creator holds: without `scopes` it gets the caller's, and a key
    made by a key expires no later than its parent and is revoked with it.
    """
    scopes = principal.scopes if body.scopes is None else frozenset(body.scopes)
    require_scopes(principal, scopes)
    api_key, key = await flows.create_api_key(
        session=session,
        identity=identity,
        principal=principal,
        name=body.name,
        scopes=scopes,
        expires_at=body.expires_at,
        current_password=body.current_password,
        auth=settings.auth,
    )
    response.headers["Location"] = url_for(request, "read_api_key", key_id=api_key.id)
    return ApiKeyCreated(**ApiKeyRead.model_validate(api_key).model_dump(), key=key)


@router.get(
    "", responses={200: response_headers("Link", required=False), **problem_responses(401, 403)}
)
async def list_api_keys(
    principal: Reader,
    page: Annotated[PageQuery, Query()],
    session: SessionDep,
    request: Request,
    response: Response,
) -> ApiKeyPage:
    """List your keys that are not revoked, newest first (prefix and metadata, never the key).

    Called with a key: that key and the keys it created, never its parent or another key.
    """
    keys, total = await api_keys_service.list_keys(
        session=session,
        user=principal.user,
        limit=page.limit,
        offset=page.offset,
        within=principal.api_key,
    )
    result = ApiKeyPage(
        items=[ApiKeyRead.model_validate(key) for key in keys],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )
    if link := result.next_link(request.url):
        response.headers["Link"] = link
    return result


@router.get("/{key_id}", name="read_api_key", responses=problem_responses(401, 403, 404))
async def read_api_key(key_id: Uuid, principal: Reader, session: SessionDep) -> ApiKeyRead:
    """Return one of your keys that is not revoked (its prefix and metadata, never the key).

    Called with a key: only that key or one it created (404 for any other).
    """
    api_key = await api_keys_service.get(
        session=session, user=principal.user, key_id=key_id, within=principal.api_key
    )
    return ApiKeyRead.model_validate(api_key)


@router.delete(
    "/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(401, 403, 404)
)
async def revoke_api_key(key_id: Uuid, principal: Writer, session: SessionDep) -> None:
    """Revoke one of your keys; it, and every key it created, stop working at once.

    Called with a key: only that key or one it created (404 for any other).
    """
    await api_keys_service.revoke(
        session=session, user=principal.user, key_id=key_id, within=principal.api_key
    )
