"""Item endpoints: HTTP in, service calls, HTTP out (ETags, Location, Link, cache)."""

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Header, Request, Response, status

from app.core.conditional import check_if_match, is_not_modified
from app.core.openapi import problem_responses, response_headers
from app.core.urls import url_for
from app.deps import CacheDep, SessionDep, SettingsDep
from app.idempotency.deps import Idempotent, IdempotentRoute
from app.items import cache as items_cache
from app.items import service as items_service
from app.items.deps import (
    ItemListingDep,
    ItemsWriter,
    OwnedItemDep,
    ReadableItemDep,
    RestorableItemDep,
)
from app.items.schemas import ItemCreate, ItemPage, ItemRead, ItemUpdate

# IdempotentRoute lets POST /items honour Idempotency-Key (it captures the response to replay).
router = APIRouter(prefix="/items", tags=["items"], route_class=IdempotentRoute)

MERGE_PATCH = {
    "requestBody": {
        "content": {
            "application/merge-patch+json": {"schema": {"$ref": "#/components/schemas/ItemUpdate"}}
        }
    }
}


IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description="The ETag you read: the change is refused (412) if the item changed since. "
        "Required when REQUIRE_IF_MATCH is on (428 without it).",
    ),
]
IfNoneMatch = Annotated[
    str | None,
    Header(
        alias="If-None-Match",
        description="An ETag you hold: 304 without a body while the item is still that version.",
    ),
]
ETAG = response_headers("ETag")


def _show(response: Response, item: ItemRead) -> ItemRead:
    response.headers["ETag"] = item.etag
    return item


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Idempotent],
    responses={201: ETAG, **problem_responses(401, 403, 409, 422)},
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
    response.headers["Location"] = url_for(request, "read_item", item_id=item.id)
    return _show(response, ItemRead.of(item))


@router.get(
    "",
    responses={200: response_headers("Link", required=False), **problem_responses(401, 403, 422)},
)
async def list_items(
    *, listing: ItemListingDep, session: SessionDep, request: Request, response: Response
) -> ItemPage:
    """List the caller's items (a superuser's: everyone's, or one owner's with `owner_id`)."""
    query = listing.query
    items, total, next_cursor = await items_service.list_items(
        session=session, query=query, owner_id=listing.owner_id
    )
    page = ItemPage(
        items=items,
        limit=query.limit,
        offset=None if query.cursor else query.offset,
        total=total,
        next_cursor=next_cursor,
    )
    if link := page.next_link(request.url):
        response.headers["Link"] = link
    return page


@router.get(
    "/{item_id}",
    name="read_item",
    response_model=ItemRead,
    responses={
        200: ETAG,
        304: {"description": "Not Modified", **ETAG},
        **problem_responses(401, 403, 404),
    },
)
async def read_item(
    *, item: ReadableItemDep, response: Response, if_none_match: IfNoneMatch = None
) -> Response | ItemRead:
    """Return an item; `If-None-Match` with its ETag answers 304. Cached after authorization."""
    if is_not_modified(if_none_match, item.etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": item.etag})
    return _show(response, item)


@router.patch(
    "/{item_id}",
    openapi_extra=MERGE_PATCH,
    responses={200: ETAG, **problem_responses(401, 403, 404, 412, 428)},
)
async def update_item(
    *,
    body: ItemUpdate,
    item: OwnedItemDep,
    session: SessionDep,
    settings: SettingsDep,
    cache: CacheDep,
    background: BackgroundTasks,
    response: Response,
    if_match: IfMatch = None,
) -> ItemRead:
    """Change an item with a JSON merge patch; `If-Match` guards against lost updates."""
    check_if_match(if_match, item.etag, required=settings.api.require_if_match)
    changes = body.model_dump(exclude_unset=True)
    updated = await items_service.update(session=session, item=item, changes=changes)
    await items_cache.forget(cache, background, item.id)
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
    if_match: IfMatch = None,
) -> None:
    """Soft-delete an item: it disappears from every read until restored."""
    check_if_match(if_match, item.etag, required=settings.api.require_if_match)
    await items_service.soft_delete(session=session, item=item)
    await items_cache.forget(cache, background, item.id)


@router.post("/{item_id}/restore", responses={200: ETAG, **problem_responses(401, 403, 404)})
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
        await items_cache.forget(cache, background, item.id)
    return _show(response, ItemRead.of(item))
