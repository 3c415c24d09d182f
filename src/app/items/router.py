"""Item endpoints: HTTP in, service calls, HTTP out (ETags, Location, Link, cache)."""

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response, status

from app.auth.exceptions import SuperuserRequired
from app.core.conditional import check_if_match, is_not_modified
from app.core.errors import ValidationFailedError
from app.core.openapi import problem_responses
from app.deps import CacheDep, SessionDep, SettingsDep
from app.idempotency.deps import Idempotent, IdempotentRoute
from app.infra.cache import invalidate
from app.items import service as items_service
from app.items.deps import ItemsReader, ItemsWriter, OwnedItemDep, RestorableItemDep, may_see
from app.items.exceptions import ItemNotFound
from app.items.schemas import ItemCreate, ItemPage, ItemQuery, ItemRead, ItemUpdate

# IdempotentRoute lets POST /items honour Idempotency-Key (it captures the response to replay).
router = APIRouter(prefix="/items", tags=["items"], route_class=IdempotentRoute)

# Members a merge patch may not remove (RFC 7396 `null` removes a member).
REQUIRED_MEMBERS = ("title", "status", "price", "currency")
MERGE_PATCH = {
    "requestBody": {
        "content": {
            "application/merge-patch+json": {"schema": {"$ref": "#/components/schemas/ItemUpdate"}}
        }
    }
}


def cache_key(item_id: uuid.UUID) -> str:
    """Where the cache keeps an item's representation."""
    return f"items:{item_id}"


def _show(response: Response, item: ItemRead) -> ItemRead:
    response.headers["ETag"] = item.etag
    return item


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Idempotent],
    responses=problem_responses(401, 403, 409, 422),
)
async def create_item(
    *,
    body: ItemCreate,
    principal: ItemsWriter,
    session: SessionDep,
    request: Request,
    response: Response,
) -> ItemRead:
    """Create an item owned by the caller."""
    item = await items_service.create(session=session, owner_id=principal.user.id, data=body)
    response.headers["Location"] = str(request.url_for("read_item", item_id=item.id))
    return _show(response, ItemRead.of(item))


@router.get("", responses=problem_responses(401, 403, 422))
async def list_items(
    *,
    query: Annotated[ItemQuery, Query()],
    principal: ItemsReader,
    session: SessionDep,
    request: Request,
    response: Response,
) -> ItemPage:
    """List the caller's items (a superuser's: everyone's, or one owner's with `owner_id`)."""
    owner_id = query.owner_id
    if not principal.user.is_superuser:
        if owner_id not in (None, principal.user.id):
            raise SuperuserRequired("Only superusers may list other users' items.")
        owner_id = principal.user.id
    items, total, next_cursor = await items_service.list_items(
        session=session, query=query, owner_id=owner_id
    )
    if next_cursor is not None:
        response.headers["Link"] = (
            f'<{request.url.include_query_params(cursor=next_cursor)}>; rel="next"'
        )
    elif total is not None and query.offset + query.limit < total:
        next_page = request.url.include_query_params(offset=query.offset + query.limit)
        response.headers["Link"] = f'<{next_page}>; rel="next"'
    return ItemPage(
        items=[ItemRead.of(item) for item in items],
        limit=query.limit,
        offset=None if query.cursor else query.offset,
        total=total,
        next_cursor=next_cursor,
    )


@router.get(
    "/{item_id}",
    name="read_item",
    response_model=ItemRead,
    responses={304: {"description": "Not Modified"}, **problem_responses(401, 403, 404)},
)
async def read_item(
    *,
    item_id: uuid.UUID,
    principal: ItemsReader,
    session: SessionDep,
    cache: CacheDep,
    request: Request,
    response: Response,
) -> ItemRead | Response:
    """Return an item; `If-None-Match` with its ETag answers 304. Cached after authorization."""
    cached = await cache.get(cache_key(item_id))
    if cached is not None:
        item = ItemRead.model_validate_json(cached)
    else:
        loaded = await items_service.get(session=session, item_id=item_id)
        if loaded is None:
            raise ItemNotFound(item_id)
        item = ItemRead.of(loaded)
    if not may_see(principal, item.owner_id):
        raise ItemNotFound(item_id)  # not 403: others' items do not exist for the caller
    if cached is None:
        await cache.set(cache_key(item_id), item.model_dump_json().encode())
    if is_not_modified(request.headers, item.etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": item.etag})
    return _show(response, item)


@router.patch(
    "/{item_id}", openapi_extra=MERGE_PATCH, responses=problem_responses(401, 403, 404, 412, 428)
)
async def update_item(
    *,
    body: ItemUpdate,
    item: OwnedItemDep,
    session: SessionDep,
    settings: SettingsDep,
    cache: CacheDep,
    background: BackgroundTasks,
    request: Request,
    response: Response,
) -> ItemRead:
    """Change an item with a JSON merge patch; `If-Match` guards against lost updates."""
    check_if_match(request.headers, item.etag, required=settings.REQUIRE_IF_MATCH)
    changes = body.model_dump(exclude_unset=True)
    removed = [name for name in REQUIRED_MEMBERS if name in changes and changes[name] is None]
    if removed:
        raise ValidationFailedError(
            "These members cannot be removed.",
            errors=[
                {"detail": "Required; null is not allowed.", "pointer": f"#/{name}"}
                for name in removed
            ],
        )
    updated = await items_service.update(session=session, item=item, changes=changes)
    await invalidate(cache, background, cache_key(item.id))
    return _show(response, ItemRead.of(updated))


@router.delete(
    "/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 412, 428),
)
async def delete_item(
    *,
    item: OwnedItemDep,
    session: SessionDep,
    settings: SettingsDep,
    cache: CacheDep,
    background: BackgroundTasks,
    request: Request,
) -> None:
    """Soft-delete an item: it disappears from every read until restored."""
    check_if_match(request.headers, item.etag, required=settings.REQUIRE_IF_MATCH)
    await items_service.soft_delete(session=session, item=item)
    await invalidate(cache, background, cache_key(item.id))


@router.post("/{item_id}/restore", responses=problem_responses(401, 403, 404))
async def restore_item(
    *,
    item: RestorableItemDep,
    session: SessionDep,
    cache: CacheDep,
    background: BackgroundTasks,
    response: Response,
) -> ItemRead:
    """Bring back a soft-deleted item (restoring a live one changes nothing)."""
    if item.is_deleted:
        item = await items_service.restore(session=session, item=item)
        await invalidate(cache, background, cache_key(item.id))
    return _show(response, ItemRead.of(item))
