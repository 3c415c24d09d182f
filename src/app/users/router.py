"""User endpoints: registration, the caller's own account, and administration."""

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query, status

from app.auth import service as auth_service
from app.auth.deps import (
    AdminReader,
    AdminWriter,
    PasswordHasherDep,
    UsersReader,
    UsersWriter,
)
from app.auth.exceptions import SuperuserRequired
from app.core.openapi import problem_responses
from app.deps import CacheDep, SessionDep
from app.infra.cache import cached, invalidate
from app.users import service as users_service
from app.users.exceptions import UserNotFound
from app.users.models import User
from app.users.schemas import (
    PasswordChange,
    UserAdminUpdate,
    UserCreate,
    UserPage,
    UserRead,
    UserUpdateMe,
)

router = APIRouter(prefix="/users", tags=["users"])


def user_cache_key(user_id: uuid.UUID) -> str:
    """Where the cache keeps an account's public representation."""
    return f"users:{user_id}"


# Registration and password changes exist only while this service owns passwords.
local_router = APIRouter(prefix="/users", tags=["users"])

MAX_PAGE_SIZE = 100


@local_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(409),
)
async def register(body: UserCreate, session: SessionDep, hasher: PasswordHasherDep) -> UserRead:
    """Create an account."""
    user = await users_service.create(
        session=session,
        hasher=hasher,
        email=body.email,
        password=body.password,
        full_name=body.full_name,
    )
    return UserRead.model_validate(user)


@router.get("/me", responses=problem_responses(401, 403))
async def read_me(principal: UsersReader) -> UserRead:
    """Return the caller's account."""
    return UserRead.model_validate(principal.user)


@router.patch("/me", responses=problem_responses(401, 403, 409))
async def update_me(
    body: UserUpdateMe,
    principal: UsersWriter,
    session: SessionDep,
    cache: CacheDep,
    background: BackgroundTasks,
) -> UserRead:
    """Change the caller's name or email (a new email must be verified again)."""
    user = await users_service.update(
        session=session, user=principal.user, changes=body.model_dump(exclude_unset=True)
    )
    await invalidate(cache, background, user_cache_key(user.id))
    return UserRead.model_validate(user)


@local_router.post(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403),
)
async def change_password(
    body: PasswordChange,
    principal: UsersWriter,
    session: SessionDep,
    hasher: PasswordHasherDep,
) -> None:
    """Change the password; every other session of the account is revoked."""
    await users_service.change_password(
        session=session,
        hasher=hasher,
        user=principal.user,
        current_password=body.current_password,
        new_password=body.new_password,
    )
    await auth_service.logout_all(
        session=session, user_id=principal.user.id, keep_session=principal.session_id
    )


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(401, 403))
async def delete_me(
    principal: UsersWriter, session: SessionDep, cache: CacheDep, background: BackgroundTasks
) -> None:
    """Delete the caller's account, with its tokens and keys."""
    await users_service.delete(session=session, user=principal.user)
    await invalidate(cache, background, user_cache_key(principal.user.id))


@router.get("", responses=problem_responses(401, 403))
async def list_users(
    _: AdminReader,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> UserPage:
    """List every account, oldest first (superusers only)."""
    users, total = await users_service.list_users(session=session, limit=limit, offset=offset)
    return UserPage(
        items=[UserRead.model_validate(u) for u in users], total=total, limit=limit, offset=offset
    )


@router.get("/{user_id}", responses=problem_responses(401, 403, 404))
async def read_user(
    user_id: uuid.UUID, principal: UsersReader, session: SessionDep, cache: CacheDep
) -> UserRead:
    """Return an account: your own, or any for a superuser (cached after authorization).

    A non-superuser asking for another id gets 403 whether or not it exists.
    """
    caller = principal.user
    if user_id == caller.id:
        return UserRead.model_validate(caller)
    if not caller.is_superuser:
        raise SuperuserRequired("You may only read your own account.")

    async def load() -> bytes | None:
        user = await users_service.get(session=session, user_id=user_id)
        return None if user is None else UserRead.model_validate(user).model_dump_json().encode()

    body = await cached(cache, user_cache_key(user_id), load)
    if body is None:
        raise UserNotFound(f"User {user_id} was not found.")
    return UserRead.model_validate_json(body)


async def get_user_for_admin(user_id: uuid.UUID, _: AdminWriter, session: SessionDep) -> User:
    """Load any user for a superuser, or 404."""
    user = await users_service.get(session=session, user_id=user_id)
    if user is None:
        raise UserNotFound(f"User {user_id} was not found.")
    return user


AdminTargetDep = Annotated[User, Depends(get_user_for_admin)]


@router.patch("/{user_id}", responses=problem_responses(401, 403, 404))
async def update_user(
    body: UserAdminUpdate,
    user: AdminTargetDep,
    session: SessionDep,
    cache: CacheDep,
    background: BackgroundTasks,
) -> UserRead:
    """Activate, deactivate, promote or rename an account (superusers only)."""
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    updated = await users_service.update(session=session, user=user, changes=changes)
    await invalidate(cache, background, user_cache_key(user.id))
    return UserRead.model_validate(updated)


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
async def delete_user(
    user: AdminTargetDep, session: SessionDep, cache: CacheDep, background: BackgroundTasks
) -> None:
    """Delete an account (superusers only)."""
    user_id = user.id
    await users_service.delete(session=session, user=user)
    await invalidate(cache, background, user_cache_key(user_id))
