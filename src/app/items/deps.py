"""Loading dependencies: an item is loaded and checked in one place before any route sees it."""

import uuid
from typing import Annotated

from fastapi import Depends

from app.auth.deps import Principal, RequireScopes
from app.auth.scopes import Scope
from app.deps import SessionDep
from app.items import service as items_service
from app.items.exceptions import ItemNotFound
from app.items.models import Item

ItemsReader = Annotated[Principal, Depends(RequireScopes(Scope.ITEMS_READ))]
ItemsWriter = Annotated[Principal, Depends(RequireScopes(Scope.ITEMS_WRITE))]


def may_see(principal: Principal, owner_id: uuid.UUID) -> bool:
    """Whether the caller may see an item of `owner_id`: its owner, or a superuser."""
    return principal.user.is_superuser or principal.user.id == owner_id


async def get_owned_item(item_id: uuid.UUID, session: SessionDep, principal: ItemsWriter) -> Item:
    """Load an item to change; another user's item is 404, as if it did not exist."""
    item = await items_service.get(session=session, item_id=item_id)
    if item is None or not may_see(principal, item.owner_id):
        raise ItemNotFound(item_id)
    return item


async def get_deleted_or_live_item(
    item_id: uuid.UUID, session: SessionDep, principal: ItemsWriter
) -> Item:
    """Load an item to restore, soft-deleted or not; another user's item is 404."""
    item = await items_service.get(session=session, item_id=item_id, include_deleted=True)
    if item is None or not may_see(principal, item.owner_id):
        raise ItemNotFound(item_id)
    return item


OwnedItemDep = Annotated[Item, Depends(get_owned_item)]
RestorableItemDep = Annotated[Item, Depends(get_deleted_or_live_item)]
