"""Loading dependencies: an account is loaded and checked in one place before a route sees it."""

from typing import Annotated

from fastapi import Depends

from app.auth.deps import AdminWriter, Principal, RequireScopes, UsersReader
from app.auth.exceptions import SuperuserRequired
from app.auth.scopes import Scope
from app.core.types import Uuid
from app.deps import CacheDep, SessionDep
from app.users import cache as users_cache
from app.users import service as users_service
from app.users.exceptions import UserNotFound
from app.users.models import User
from app.users.schemas import UserRead


async def get_readable_user(
    user_id: Uuid, principal: UsersReader, session: SessionDep, cache: CacheDep
) -> UserRead:
    """Return an account the caller may read: its own, or any for a superuser (cached).

    A non-superuser asking for another id gets 403 whether or not it exists.
    """
    caller = principal.user
    if user_id == caller.id:
        return UserRead.model_validate(caller)
    if not caller.is_superuser:
        raise SuperuserRequired("You may only read your own account.")

    async def load() -> UserRead | None:
        user = await users_service.get(session=session, user_id=user_id)
        return None if user is None else UserRead.model_validate(user)

    found = await users_cache.read(cache, user_id, load)
    if found is None:
        raise UserNotFound(f"User {user_id} was not found.")
    return found


async def get_user_for_admin(user_id: Uuid, _: AdminWriter, session: SessionDep) -> User:
    """Load any user for a superuser to change, or 404."""
    user = await users_service.get(session=session, user_id=user_id)
    if user is None:
        raise UserNotFound(f"User {user_id} was not found.")
    return user


ReadableUserDep = Annotated[UserRead, Depends(get_readable_user)]
AdminTargetDep = Annotated[User, Depends(get_user_for_admin)]

# An export reads the profile and every item: asking for it, and reading what it wrote.
EXPORT_SCOPES = (Scope.USERS_READ, Scope.ITEMS_READ)
ExportReader = Annotated[Principal, Depends(RequireScopes(*EXPORT_SCOPES))]
