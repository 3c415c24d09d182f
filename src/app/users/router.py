"""User endpoints: registration, the caller's own account, and administration."""

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Body, Query, Request, Response, status

from app.auth import flows, notifications
from app.auth.deps import AdminReader, AdminWriter, UsersReader, UsersWriter
from app.auth.proof import IdentityCheckDep, proof_responses
from app.core.openapi import problem_responses, response_headers
from app.core.routing import StrictBodyRoute
from app.core.urls import url_for
from app.db.pagination import PageQuery
from app.deps import CacheDep, PasswordHasherDep, SessionDep, SettingsDep
from app.jobs import mail as job_mail
from app.jobs import service as jobs_service
from app.jobs.deps import JobSenderDep, may_read_result
from app.jobs.schemas import JobRead
from app.jobs.views import job_location, job_view
from app.users import cache as users_cache
from app.users import service as users_service
from app.users.deletion import AccountDeletionDep
from app.users.deps import EXPORT_SCOPES, AdminTargetDep, ExportReader, ReadableUserDep
from app.users.export import EXPORT_USER_DATA
from app.users.schemas import (
    AccountDeletion,
    EmailChange,
    PasswordChange,
    UserAdminUpdate,
    UserCreate,
    UserPage,
    UserRead,
    UserUpdateMe,
)

router = APIRouter(prefix="/users", tags=["users"], route_class=StrictBodyRoute)
# Registration and password changes exist only while this service owns passwords.
local_router = APIRouter(prefix="/users", tags=["users"], route_class=StrictBodyRoute)
# POST routes of `local_router` that check or issue credentials: the rate limiter's auth quota.
CREDENTIAL_PATHS = ("", "/me/password", "/me/email")
# A DELETE's body is optional: a caller who logged in just now needs to send none.
NO_PROOF = AccountDeletion()
DeletionProof = Annotated[AccountDeletion, Body()]


@local_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(409),
)
async def register(
    body: UserCreate,
    session: SessionDep,
    hasher: PasswordHasherDep,
    request: Request,
    response: Response,
) -> UserRead:
    """Create an account; `Location` names it."""
    user = await users_service.create(
        session=session,
        hasher=hasher,
        email=body.email,
        password=body.password,
        full_name=body.full_name,
    )
    response.headers["Location"] = url_for(request, "read_user", user_id=user.id)
    return UserRead.model_validate(user)


@router.get("/me", responses=problem_responses(401, 403))
async def read_me(principal: UsersReader) -> UserRead:
    """Return the caller's account."""
    return UserRead.model_validate(principal.user)


@router.patch("/me", responses=problem_responses(401, 403))
async def update_me(
    body: UserUpdateMe,
    principal: UsersWriter,
    session: SessionDep,
    cache: CacheDep,
    background: BackgroundTasks,
) -> UserRead:
    """Change the caller's name (not the email: that change is confirmed by mail)."""
    user = await users_service.update(
        session=session, user=principal.user, changes=body.model_dump(exclude_unset=True)
    )
    await users_cache.forget(cache, background, user.id)
    return UserRead.model_validate(user)


@local_router.post(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=proof_responses(fresh=False),
)
async def change_password(
    *,
    body: PasswordChange,
    principal: UsersWriter,
    session: SessionDep,
    hasher: PasswordHasherDep,
    identity: IdentityCheckDep,
) -> None:
    """Change the password, proven by the current one; never with an API key.

    Every other session of the account ends, and every token mailed for it (a pending email
    change, password reset or verification) stops working.
    """
    await flows.change_password(
        session=session,
        hasher=hasher,
        identity=identity,
        principal=principal,
        current_password=body.current_password,
        new_password=body.new_password,
    )


@local_router.post(
    "/me/email",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    responses=proof_responses(409),
)
async def change_email(
    *,
    body: EmailChange,
    principal: UsersWriter,
    session: SessionDep,
    settings: SettingsDep,
    identity: IdentityCheckDep,
    jobs_sender: JobSenderDep,
) -> None:
    """Ask to move the account to a new email; it changes once the mailed token is confirmed.

    Needs `current_password`, or a login of the last few minutes; never an API key. The new
    address gets the token (`POST /auth/email-change/confirm`); the current one is told.
    """
    user = principal.user
    token = await flows.request_email_change(
        session=session,
        identity=identity,
        principal=principal,
        new_email=body.email,
        current_password=body.current_password,
        auth=settings.auth,
    )
    secret = settings.auth.jwt_secret.get_secret_value()
    for message in (
        notifications.email_change_message(to=body.email, token=token),
        notifications.email_change_notice(to=user.email, new_email=body.email),
    ):
        await job_mail.send_later(jobs_sender, session, message, secret=secret, owner_id=user.id)


@router.post(
    "/me/export",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        status.HTTP_202_ACCEPTED: {
            "description": "The export job, queued (or the one already queued or running).",
            "headers": {
                "Location": {"description": "The job's status.", "schema": {"type": "string"}}
            },
        },
        **problem_responses(401, 403),
    },
)
async def export_me(
    principal: ExportReader,
    session: SessionDep,
    jobs_sender: JobSenderDep,
    request: Request,
    response: Response,
) -> JobRead:
    """Start exporting the caller's profile and items; follow `Location` to the job.

    While an export of the caller's is queued or running, that job is answered instead of a
    new one. Once it succeeded, its `result_url` downloads the file.
    """
    user_id = principal.user.id
    job = await jobs_service.hold_active(session=session, owner_id=user_id, task=EXPORT_USER_DATA)
    if job is None:
        job = await jobs_sender.enqueue(
            session, task=EXPORT_USER_DATA, args={}, owner_id=user_id, read_scopes=EXPORT_SCOPES
        )
    response.headers["Location"] = job_location(request, job)
    return job_view(request, job, result_readable=may_read_result(principal, job))


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT, responses=proof_responses(409))
async def delete_me(
    *,
    body: DeletionProof = NO_PROOF,
    principal: UsersWriter,
    delete: AccountDeletionDep,
) -> None:
    """Delete the caller's account, with its tokens and keys; a fresh proof, never an API key."""
    await delete(principal, principal.user, body.current_password)


@router.get(
    "", responses={200: response_headers("Link", required=False), **problem_responses(401, 403)}
)
async def list_users(
    _: AdminReader,
    page: Annotated[PageQuery, Query()],
    session: SessionDep,
    request: Request,
    response: Response,
) -> UserPage:
    """List every account, oldest first (superusers only)."""
    users, total = await users_service.list_users(
        session=session, limit=page.limit, offset=page.offset
    )
    result = UserPage(
        items=[UserRead.model_validate(user) for user in users],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )
    if link := result.next_link(request.url):
        response.headers["Link"] = link
    return result


@router.get("/{user_id}", responses=problem_responses(401, 403, 404))
async def read_user(user: ReadableUserDep) -> UserRead:
    """Return an account: your own, or any for a superuser (cached after authorization).

    A non-superuser asking for another id gets 403 whether or not it exists.
    """
    return user


@router.patch("/{user_id}", responses=proof_responses(404, 409, superuser=True))
async def update_user(
    *,
    body: UserAdminUpdate,
    user: AdminTargetDep,
    principal: AdminWriter,
    session: SessionDep,
    identity: IdentityCheckDep,
    cache: CacheDep,
    background: BackgroundTasks,
) -> UserRead:
    """Activate, deactivate, promote, demote or rename an account (superusers only).

    Changing `is_active` or `is_superuser` needs `current_password`, or a login of the last
    few minutes; never an API key. Deactivating ends every session, revokes every API key and
    voids every mailed token of the account; reactivating brings none of them back.
    """
    changes = body.model_dump(exclude_unset=True, exclude={"current_password"})
    updated = await flows.update_user_as_admin(
        session=session,
        identity=identity,
        principal=principal,
        user=user,
        changes=changes,
        current_password=body.current_password,
    )
    await users_cache.forget(cache, background, user.id)
    return UserRead.model_validate(updated)


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=proof_responses(404, 409, superuser=True),
)
async def delete_user(
    *,
    body: DeletionProof = NO_PROOF,
    user: AdminTargetDep,
    principal: AdminWriter,
    delete: AccountDeletionDep,
) -> None:
    """Delete an account (superusers only); the superuser's fresh proof, never an API key."""
    await delete(principal, user, body.current_password)
