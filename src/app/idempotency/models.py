"""Idempotency keys: one row per (caller, key), first claimed, then holding the stored response."""

import uuid
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UUIDPrimaryKeyMixin, utcnow

MAX_KEY_LENGTH = 255


class IdempotencyKey(UUIDPrimaryKeyMixin, Base):
    """A request made with an `Idempotency-Key`; `completed_at` is None while it runs.

    The id is the claim's token: completing or releasing a claim names it, so a request whose
    abandoned claim was taken over can never overwrite its successor's row.
    """

    __tablename__ = "idempotency_keys"
    # The unique pair is what makes a claim exclusive across workers; it also serves lookups.
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH))
    method: Mapped[str] = mapped_column(String(16))
    # The request target: path and query string.
    path: Mapped[str] = mapped_column(Text)
    body_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    response_status: Mapped[int | None] = mapped_column(default=None)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSON, default=None)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
