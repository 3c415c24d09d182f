"""User API schemas: what clients send and what they get back (never the password hash)."""

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, WithJsonSchema

from app.core.security import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH
from app.core.types import Bool, Text
from app.db.pagination import Page


def normalize_email(email: str) -> str:
    """Trim and lower-case an email, so uniqueness and look-ups ignore case."""
    return email.strip().lower()


EMAIL_MAX_LENGTH = 254  # RFC 5321's limit on a forward path, which email-validator enforces
# email-validator also refuses special-use domains (`.test`, `.local`...) and dotless ones: the
# pattern tells clients so, as JSON Schema's `email` format alone allows them.
_EMAIL_SCHEMA = {
    "type": "string",
    "format": "email",
    "maxLength": EMAIL_MAX_LENGTH,
    "pattern": r"@[^@]+\.(?!(?:arpa|invalid|local|localhost|onion|test)$)[^.@]+$",
}
Email = Annotated[
    EmailStr, AfterValidator(normalize_email), WithJsonSchema(_EMAIL_SCHEMA, mode="validation")
]
Password = Annotated[Text, Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)]
FullName = Annotated[Text, Field(min_length=1, max_length=200)]
CurrentPassword = Annotated[Text, Field(max_length=PASSWORD_MAX_LENGTH)]


class UserCreate(BaseModel):
    """Registration."""

    model_config = ConfigDict(extra="forbid")

    email: Email
    password: Password
    full_name: FullName | None = None


class UserRead(BaseModel):
    """A user as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    full_name: str | None
    is_active: bool
    is_superuser: bool
    email_verified_at: datetime | None
    created_at: datetime


class UserUpdateMe(BaseModel):
    """Changes a user may make to their own account (the email changes by `/users/me/email`)."""

    model_config = ConfigDict(extra="forbid")

    full_name: FullName | None = None


class EmailChange(BaseModel):
    """Move the account to a new email, proven by the current password or a recent login."""

    model_config = ConfigDict(extra="forbid")

    email: Email
    current_password: CurrentPassword | None = None


class UserAdminUpdate(BaseModel):
    """Changes a superuser may make to any account."""

    model_config = ConfigDict(extra="forbid")

    full_name: FullName | None = None
    is_active: Bool | None = None
    is_superuser: Bool | None = None


class PasswordChange(BaseModel):
    """A password change, proven by the current password."""

    model_config = ConfigDict(extra="forbid")

    current_password: CurrentPassword
    new_password: Password


class UserPage(Page[UserRead]):
    """One page of users."""
