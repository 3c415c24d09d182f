"""Account flows that span users, sessions and keys: one named home for each, called by routers.

Each flow is a service-level function (keyword-only, session first, flushes, never commits;
`IdentityCheck` commits the count of a password check before checking, as a login does). That
commit ends the request's transaction and releases its locks: a flow that proves the caller's
identity takes its locks, and reads what it decides from, only after `identity.confirm`.
"""

import uuid
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from app.api_keys import service as api_keys_service
from app.api_keys.models import ApiKey
from app.auth import action_tokens
from app.auth import service as auth_service
from app.auth.deps import Principal
from app.auth.proof import IdentityCheck, hold, require_session
from app.auth.throttle import LoginThrottle
from app.core.security import PasswordHasher
from app.core.settings_groups import AuthSettings
from app.db.base import utcnow
from app.items import service as items_service
from app.jobs import service as jobs_service
from app.users import service as users_service
from app.users.exceptions import EmailTaken, EmailUnchanged
from app.users.models import User

# A superuser's changes that grant or take away an account's access: they need a fresh proof.
ACCESS_CHANGES = frozenset({"is_active", "is_superuser"})


async def end_access(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    keep_session: uuid.UUID | None = None,
    revoke_keys: bool = False,
) -> None:
    """End what the account handed out: sessions, action tokens and, when asked, API keys.

    Every session but `keep_session` is revoked, and every outstanding action token of any
    purpose is voided; `revoke_keys` revokes every API key too. The one step of every flow that
    ends the account's access: whoever held a session, or a token mailed before, loses it, so
    a pending email change cannot outlive a recovery.
    """
    await auth_service.logout_all(session=session, user_id=user_id, keep_session=keep_session)
    await action_tokens.void_every_action_token(session=session, user_id=user_id)
    if revoke_keys:
        await api_keys_service.revoke_all(session=session, user_id=user_id)


async def logout_all(*, session: AsyncSession, principal: Principal) -> None:
    """End every session of the caller, and every action token mailed for the account.

    Never with an API key: a key may act within its scopes, not end its owner's sessions.
    """
    require_session(principal)
    await end_access(session=session, user_id=principal.user.id)


async def change_password(
    *,
    session: AsyncSession,
    hasher: PasswordHasher,
    identity: IdentityCheck,
    principal: Principal,
    current_password: str,
    new_password: str,
) -> None:
    """Replace a proven password; every other session and every action token stop working."""
    await identity.confirm(principal, current_password, fresh_for=timedelta(0))
    user = principal.user
    await users_service.set_password(
        session=session, hasher=hasher, user=user, password=new_password
    )
    await end_access(session=session, user_id=user.id, keep_session=principal.session_id)


async def reset_password(
    *, session: AsyncSession, hasher: PasswordHasher, token: str, new_password: str
) -> None:
    """Recover an account with a reset token: new password, every credential revoked.

    Every session, every API key and every other action token of the account stop working.
    """
    user = await action_tokens.spend_reset_token(session=session, token=token)
    await users_service.set_password(
        session=session, hasher=hasher, user=user, password=new_password
    )
    await end_access(session=session, user_id=user.id, revoke_keys=True)


async def verify_email(*, session: AsyncSession, token: str) -> User:
    """Mark the user's current email verified with a verification token; return the user."""
    user = await action_tokens.use_action_token(
        session=session, token=token, purpose=action_tokens.EMAIL_VERIFICATION
    )
    user.email_verified_at = utcnow()
    await session.flush()
    return user


async def request_email_change(
    *,
    session: AsyncSession,
    identity: IdentityCheck,
    principal: Principal,
    new_email: str,
    current_password: str | None,
    auth: AuthSettings,
) -> str:
    """Start moving the account to `new_email`; return the token to mail there.

    Nothing changes until the token comes back (`confirm_email_change`).
    """
    await identity.confirm(principal, current_password)
    if new_email == principal.user.email:
        raise EmailUnchanged("That is already the account's email.")
    if await users_service.get_by_email(session=session, email=new_email) is not None:
        raise EmailTaken(f"An account with {new_email} already exists.")
    return await action_tokens.start_email_change(
        session=session,
        user=principal.user,
        new_email=new_email,
        ttl_seconds=auth.email_verification_ttl_seconds,
    )


async def confirm_email_change(
    *, session: AsyncSession, throttle: LoginThrottle, token: str
) -> User:
    """Move the account to the address the token was mailed to; it counts as verified.

    The login throttle forgets the old address: its known clients proved this account's
    password, not that of whoever registers the address next.
    """
    user, new_email = await action_tokens.spend_email_change_token(session=session, token=token)
    old_email = user.email
    await users_service.update(session=session, user=user, changes={"email": new_email})
    # Under the user's lock, which spending the token took (see `app.auth.throttle`).
    await throttle.forget(old_email, user.id)
    user.email_verified_at = utcnow()
    # Tokens mailed before the change, to either address, must not act on the account any more.
    await action_tokens.void_every_action_token(session=session, user_id=user.id)
    await session.flush()
    return user


async def update_user_as_admin(
    *,
    session: AsyncSession,
    identity: IdentityCheck,
    principal: Principal,
    user: User,
    changes: dict[str, Any],
    current_password: str | None,
) -> User:
    """Apply a superuser's changes; deactivating an account ends its access for good.

    Granting or taking away access (`ACCESS_CHANGES`) needs the superuser's fresh proof, never
    an API key, and never takes the last active superuser away (409 `last_superuser`). The
    sessions, API keys and action tokens of a deactivated account are revoked, not merely
    refused while inactive: reactivating the account brings none of them back.
    """
    if ACCESS_CHANGES & changes.keys():
        # Every change of access takes the superusers' turn: those that may remove one must,
        # and taking it first, whatever the change, orders their row locks (no deadlock).
        turn = users_service.SUPERUSERS_TURN
        await identity.confirm(principal, current_password, superuser=True, turn=turn)
        user = await users_service.lock_target(session=session, user=user)
        removing = False in (changes.get("is_superuser"), changes.get("is_active"))
        if removing and user.is_superuser:
            await users_service.keep_a_superuser(session=session, leaving=user.id)
    deactivating = changes.get("is_active") is False and user.is_active
    updated = await users_service.update(session=session, user=user, changes=changes)
    if deactivating:
        await end_access(session=session, user_id=user.id, revoke_keys=True)
    return updated


class DeletedAccount(NamedTuple):
    """What an account left behind for its deleter to clear once the deletion commits."""

    item_ids: list[uuid.UUID]  # their cached copies
    result_files: list[uuid.UUID]  # the jobs whose result files hold its data


async def delete_account(
    *,
    session: AsyncSession,
    identity: IdentityCheck,
    principal: Principal,
    user: User,
    current_password: str | None,
) -> DeletedAccount:
    """Delete an account (the caller's, or any for a superuser), proven afresh; never by a key.

    Never the last active superuser's (409 `last_superuser`). Its sessions, API keys, action
    tokens, items and jobs go with it, and the login throttle forgets its email. Returns what
    lies outside the database: the ids its items had, for their cached copies, and its jobs'
    result files, to delete once this commits.
    """
    # Any account may have become a superuser since the request began: every deletion takes
    # the superusers' turn, and checks the account as it is once locked.
    await identity.confirm(
        principal,
        current_password,
        superuser=user.id != principal.user.id,
        turn=users_service.SUPERUSERS_TURN,
    )
    user = await users_service.lock_target(session=session, user=user)
    if user.is_superuser:
        await users_service.keep_a_superuser(session=session, leaving=user.id)
    item_ids = await items_service.owned_ids(session=session, owner_id=user.id)
    result_files = await jobs_service.owned_ids_with_files(session=session, owner_id=user.id)
    email, account = user.email, user.id
    await users_service.delete(session=session, user=user)
    # After the delete, which holds the account's row (see `app.auth.throttle`).
    await identity.throttle.forget(email, account)
    return DeletedAccount(item_ids, result_files)


async def create_api_key(
    *,
    session: AsyncSession,
    identity: IdentityCheck,
    principal: Principal,
    name: str,
    scopes: frozenset[str],
    expires_at: datetime | None,
    current_password: str | None,
    auth: AuthSettings,
) -> tuple[ApiKey, str]:
    """Create a key for the caller: a session proves itself afresh; a key mints a lesser key."""
    now = utcnow()
    parent = principal.api_key
    if parent is None:
        await identity.confirm(principal, current_password)
    else:  # a key asks: no proof, but the same lock and check of what it relies on
        await hold(session, principal)
    return await api_keys_service.create(
        session=session,
        user=principal.user,
        name=name,
        scopes=scopes,
        expires_at=expires_at,
        parent=parent,
        now=now,
        default_ttl=timedelta(days=auth.api_key_default_ttl_days),
        max_ttl=timedelta(days=auth.api_key_max_ttl_days),
    )
