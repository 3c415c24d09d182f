"""Stored credentials: refresh tokens, single-use action tokens, failed logins, known clients."""

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UUIDPrimaryKeyMixin, utcnow


class RefreshToken(UUIDPrimaryKeyMixin, Base):
    """One refresh token of a rotation family; only its SHA-256 digest is stored."""

    __tablename__ = "refresh_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    family_id: Mapped[uuid.UUID] = mapped_column(index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the user proved who they are (the login that began the family): access tokens
    # issued on refresh carry it, so "a fresh login" survives rotation but not its age.
    authenticated_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    # Set when this token was exchanged for the next one of its family.
    rotated_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class ActionToken(UUIDPrimaryKeyMixin, Base):
    """A single-use, expiring token for a password reset or an email verification."""

    __tablename__ = "action_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(32))
    # The address the token was sent to: a verification is void once the email changes.
    email: Mapped[str] = mapped_column(String(320))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class LoginFailure(UUIDPrimaryKeyMixin, Base):
    """A failed proof of a password for one (normalised) email, from one client address."""

    __tablename__ = "login_failures"

    email: Mapped[str] = mapped_column(String(320), index=True)
    client: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class LoginKnownClient(UUIDPrimaryKeyMixin, Base):
    """A client address that proved the password of one (normalised) email, and when last."""

    __tablename__ = "login_known_clients"
    __table_args__ = (UniqueConstraint("email", "client"),)

    email: Mapped[str] = mapped_column(String(320))
    client: Mapped[str] = mapped_column(String(64))
    last_login_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
