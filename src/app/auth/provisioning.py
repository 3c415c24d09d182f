"""Local accounts for people who sign in through an external identity provider (OIDC)."""

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.exceptions import AccountLinkRefused, InvalidToken
from app.core.security import PasswordHasher
from app.db.base import utcnow
from app.infra.oidc import OidcIdentity
from app.users import service as users_service
from app.users.exceptions import EmailTaken
from app.users.models import User
from app.users.schemas import normalize_email

MAX_SUBJECT_LENGTH = 255  # OIDC Core: `sub` is at most 255 ASCII characters
MAX_EMAIL_LENGTH = 320

log = structlog.get_logger(__name__)


def _email_of(identity: OidcIdentity) -> str:
    """The account's email: the issuer's, normalised like every address the API receives.

    Raises:
        InvalidToken: the claim is no address.
    """
    if identity.email is None:
        # The email column is required; a subject without one gets an address that cannot
        # exist, and that no client can claim (the normaliser refuses `.invalid`).
        return f"{identity.subject}@oidc.invalid".strip().lower()
    try:
        return normalize_email(identity.email)
    except ValueError:
        raise InvalidToken("The token's email is not valid.") from None


def _check_storable(identity: OidcIdentity) -> None:
    if not 0 < len(identity.subject) <= MAX_SUBJECT_LENGTH or "\x00" in identity.subject:
        raise InvalidToken("The token's subject is not valid.")
    email = _email_of(identity)
    if len(email) > MAX_EMAIL_LENGTH or not email.isprintable():
        raise InvalidToken("The token's email is not valid.")


async def _link_by_email(session: AsyncSession, identity: OidcIdentity) -> User | None:
    """Link the identity to the local account with its email, if both sides proved the email.

    Anyone can register a victim's address locally (and create an API key) before the victim
    first signs in through the issuer; linking then would hand the intruder the victim's data.
    So the issuer must vouch for the email, and so must a confirmation mail sent locally.
    """
    user = await users_service.get_by_email(session=session, email=_email_of(identity))
    if user is None:
        return None
    if user.external_subject is not None:
        raise InvalidToken("This email belongs to another account.")
    if not identity.email_verified or user.email_verified_at is None:
        log.warning(
            "oidc_link_refused", user_id=str(user.id), issuer_verified=identity.email_verified
        )
        raise AccountLinkRefused
    user.external_subject = identity.subject
    await session.flush()
    log.info("oidc_account_linked", user_id=str(user.id))
    return user


async def user_for_identity(
    *, session: AsyncSession, hasher: PasswordHasher, identity: OidcIdentity
) -> User:
    """Return the local user for an OIDC identity, creating it on first sight."""
    _check_storable(identity)
    user = await users_service.get_by_subject(session=session, subject=identity.subject)
    if user is None:
        user = await _link_by_email(session, identity)
    if user is None:
        try:
            user = await users_service.create(
                session=session,
                hasher=hasher,
                email=_email_of(identity),
                password=None,
                external_subject=identity.subject,
            )
        except EmailTaken:  # the same person's first two requests raced
            user = await users_service.get_by_subject(session=session, subject=identity.subject)
            if user is None:
                raise InvalidToken from None
    if (
        identity.email_verified
        and user.email_verified_at is None
        and user.email == _email_of(identity)
    ):
        user.email_verified_at = utcnow()
    if not user.is_active:
        raise InvalidToken("This account is disabled.")
    return user
