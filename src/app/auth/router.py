"""Authentication endpoints: login, refresh, logout, password reset and email verification."""

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from app.auth import action_tokens, flows, jobs, notifications
from app.auth import service as auth_service
from app.auth.deps import LoginThrottleDep, LoginThrottleStateDep, UsersReader, UsersWriter
from app.auth.proof import session_only_responses
from app.auth.schemas import (
    EmailVerification,
    PasswordResetConfirm,
    PasswordResetRequest,
    RefreshRequest,
    TokenPair,
)
from app.core.openapi import problem_responses
from app.core.routing import StrictBodyRoute
from app.core.security import PASSWORD_MAX_LENGTH
from app.deps import CacheDep, PasswordHasherDep, SessionDep, SettingsDep
from app.jobs import mail as job_mail
from app.jobs.deps import JobSenderDep
from app.users import cache as users_cache
from app.users.schemas import EMAIL_MAX_LENGTH, UserRead

# Every route here deals in local passwords or local tokens: with an external identity
# provider (AUTH_PROVIDER=oidc) the routers are not included at all.
router = APIRouter(prefix="/auth", tags=["auth"], route_class=StrictBodyRoute)
# Kept outside /api/v1 for clients written against the first version of the API.
legacy_local_router = APIRouter(prefix="/auth", tags=["auth (legacy)"], route_class=StrictBodyRoute)
legacy_router = APIRouter(prefix="/auth", tags=["auth (legacy)"], route_class=StrictBodyRoute)


class PasswordForm(OAuth2PasswordRequestForm):
    """The OAuth2 password form, with the bounds the service enforces in its schema.

    An empty `username` or `password` is refused (FastAPI reads an empty form field as a
    missing one), so the schema says so: at least one character each.
    """

    def __init__(
        self,
        *,
        grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
        username: Annotated[str, Form(min_length=1, max_length=EMAIL_MAX_LENGTH)],
        password: Annotated[str, Form(min_length=1, max_length=PASSWORD_MAX_LENGTH)],
        scope: Annotated[str, Form()] = "",
        client_id: Annotated[str | None, Form()] = None,
        client_secret: Annotated[str | None, Form()] = None,
    ) -> None:
        super().__init__(
            grant_type=grant_type,
            username=username,
            password=password,
            scope=scope,
            client_id=client_id,
            client_secret=client_secret,
        )


LoginForm = Annotated[PasswordForm, Depends()]
# POST routes that check or issue credentials: the rate limiter gives them its auth quota.
CREDENTIAL_PATHS = (
    "/login",
    "/refresh",
    "/logout",
    "/password-reset",
    "/password-reset/confirm",
    "/verify-email",
    "/email-change/confirm",
)
LEGACY_CREDENTIAL_PATHS = ("/login",)


@router.post(
    "/login",
    responses=problem_responses(401, 429),
)
@legacy_local_router.post(
    "/login",
    responses=problem_responses(401, 429),
    summary="Login (legacy path)",
)
async def login(
    form: LoginForm,
    session: SessionDep,
    settings: SettingsDep,
    hasher: PasswordHasherDep,
    throttle: LoginThrottleDep,
) -> TokenPair:
    """Exchange email (`username`) and password for an access and a refresh token."""
    user = await auth_service.authenticate(
        session=session,
        hasher=hasher,
        throttle=throttle,
        email=form.username,
        password=form.password,
    )
    return await auth_service.issue_tokens(session=session, auth=settings.auth, user=user)


@router.post("/refresh", responses=problem_responses(401))
async def refresh(body: RefreshRequest, session: SessionDep, settings: SettingsDep) -> TokenPair:
    """Exchange a refresh token for a new pair; the old one stops working."""
    return await auth_service.rotate(
        session=session, auth=settings.auth, refresh_token=body.refresh_token
    )


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(body: RefreshRequest, session: SessionDep) -> None:
    """Revoke the session (refresh token family) this refresh token belongs to."""
    await auth_service.logout(session=session, refresh_token=body.refresh_token)


@router.post(
    "/logout-all",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=session_only_responses(),
)
async def logout_all(principal: UsersWriter, session: SessionDep) -> None:
    """Revoke every session of the current user, and void every token mailed for the account.

    A pending email change, password reset or email verification stops working. A session
    only: an API key, whatever its scopes, may not end its owner's sessions.
    """
    await flows.logout_all(session=session, principal=principal)


@router.post("/password-reset", status_code=status.HTTP_202_ACCEPTED, response_class=Response)
async def request_password_reset(
    body: PasswordResetRequest, session: SessionDep, jobs_sender: JobSenderDep
) -> None:
    """Mail a reset token if the account exists; the answer is the same either way.

    One reset mail per account per minute: the token mailed last is still good.

    The account is looked up by a job, after the answer is sent, so its time says nothing.
    """
    await jobs_sender.enqueue(session, task=jobs.SEND_PASSWORD_RESET, args={"email": body.email})


@router.post(
    "/password-reset/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(422),
)
async def confirm_password_reset(
    body: PasswordResetConfirm, session: SessionDep, hasher: PasswordHasherDep
) -> None:
    """Set a new password with a reset token.

    Recovering the account ends every session and revokes every API key of the account; every
    other token mailed for it (a pending email change, a verification) stops working.
    """
    await flows.reset_password(
        session=session, hasher=hasher, token=body.token, new_password=body.new_password
    )


@router.post(
    "/verify-email/request",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    responses=problem_responses(401),
)
async def request_email_verification(
    principal: UsersWriter, session: SessionDep, settings: SettingsDep, jobs_sender: JobSenderDep
) -> None:
    """Mail a verification token to the current email.

    Nothing is mailed when it is already verified, or when a token was mailed to it in the
    last minute (that one is still good).
    """
    user = principal.user
    auth = settings.auth
    token = await action_tokens.start_email_verification(
        session=session, user=user, ttl_seconds=auth.email_verification_ttl_seconds
    )
    if token is not None:
        message = notifications.verification_message(to=user.email, token=token)
        secret = auth.jwt_secret.get_secret_value()
        await job_mail.send_later(jobs_sender, session, message, secret=secret, owner_id=user.id)


@router.post(
    "/verify-email",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(422),
)
async def verify_email(
    body: EmailVerification, session: SessionDep, cache: CacheDep, background: BackgroundTasks
) -> None:
    """Confirm the email address with the token from the verification mail."""
    user = await flows.verify_email(session=session, token=body.token)
    await users_cache.forget(cache, background, user.id)


@router.post(
    "/email-change/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(409, 422),
)
async def confirm_email_change(
    body: EmailVerification,
    session: SessionDep,
    throttle: LoginThrottleStateDep,
    cache: CacheDep,
    background: BackgroundTasks,
) -> None:
    """Move the account to its new email with the token mailed there (`POST /users/me/email`).

    Every other token mailed for the account, to either address, stops working.
    """
    user = await flows.confirm_email_change(session=session, throttle=throttle, token=body.token)
    await users_cache.forget(cache, background, user.id)


@legacy_router.get("/me", summary="Current user (legacy path)", responses=problem_responses(401))
async def legacy_me(principal: UsersReader) -> UserRead:
    """Return the current user."""
    return UserRead.model_validate(principal.user)
