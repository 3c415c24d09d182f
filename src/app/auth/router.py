"""Authentication endpoints: login, refresh, logout, password reset and email verification."""

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, status
from fastapi.security import OAuth2PasswordRequestForm

from app.auth import flows, notifications
from app.auth import service as auth_service
from app.auth.deps import LoginThrottleDep, UsersReader, UsersWriter
from app.auth.schemas import (
    EmailVerification,
    PasswordResetConfirm,
    PasswordResetRequest,
    RefreshRequest,
    TokenPair,
)
from app.core.openapi import problem_responses
from app.deps import CacheDep, MailerDep, PasswordHasherDep, SessionDep, SettingsDep
from app.users import cache as users_cache
from app.users.schemas import UserRead, normalize_email

# Every route here deals in local passwords or local tokens: with an external identity
# provider (AUTH_PROVIDER=oidc) the routers are not included at all.
router = APIRouter(prefix="/auth", tags=["auth"])
# Kept outside /api/v1 for clients written against the first version of the API.
legacy_local_router = APIRouter(prefix="/auth", tags=["auth (legacy)"])
legacy_router = APIRouter(prefix="/auth", tags=["auth (legacy)"])

LoginForm = Annotated[OAuth2PasswordRequestForm, Depends()]
# Routes of `router` that check or issue credentials: the rate limiter's stricter auth quota.
CREDENTIAL_PATHS = ("/login", "/password-reset", "/password-reset/confirm")


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
        email=normalize_email(form.username),
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
    responses=problem_responses(401, 403),
)
async def logout_all(principal: UsersWriter, session: SessionDep) -> None:
    """Revoke every session of the current user."""
    await auth_service.logout_all(session=session, user_id=principal.user.id)


@router.post("/password-reset", status_code=status.HTTP_202_ACCEPTED)
async def request_password_reset(
    body: PasswordResetRequest,
    session: SessionDep,
    settings: SettingsDep,
    mailer: MailerDep,
    background: BackgroundTasks,
) -> None:
    """Mail a reset token if the account exists; the answer is the same either way."""
    ttl = settings.auth.password_reset_ttl_seconds
    issued = await auth_service.start_password_reset(
        session=session, email=body.email, ttl_seconds=ttl
    )
    if issued is not None:
        email, token = issued
        message = notifications.password_reset_message(to=email, token=token, ttl_seconds=ttl)
        notifications.send_later(background, mailer, message)


@router.post(
    "/password-reset/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(422),
)
async def confirm_password_reset(
    body: PasswordResetConfirm, session: SessionDep, hasher: PasswordHasherDep
) -> None:
    """Set a new password with a reset token; every session of the account is revoked."""
    await flows.reset_password(
        session=session, hasher=hasher, token=body.token, new_password=body.new_password
    )


@router.post(
    "/verify-email/request",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(401),
)
async def request_email_verification(
    principal: UsersWriter,
    session: SessionDep,
    settings: SettingsDep,
    mailer: MailerDep,
    background: BackgroundTasks,
) -> None:
    """Mail a verification token to the current email (nothing when already verified)."""
    token = await auth_service.start_email_verification(
        session=session,
        user=principal.user,
        ttl_seconds=settings.auth.email_verification_ttl_seconds,
    )
    if token is not None:
        message = notifications.verification_message(to=principal.user.email, token=token)
        notifications.send_later(background, mailer, message)


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


@legacy_router.get("/me", summary="Current user (legacy path)", responses=problem_responses(401))
async def legacy_me(principal: UsersReader) -> UserRead:
    """Return the current user."""
    return UserRead.model_validate(principal.user)
