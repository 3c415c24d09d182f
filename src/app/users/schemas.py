"""User API schemas: what clients send and what they get back (never the password hash)."""

import unicodedata
import uuid
from datetime import datetime
from typing import Annotated

import email_validator
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from app.core.security import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH
from app.core.types import NOT_BLANK_PATTERN, Bool, Text, not_nullable, trim_blanks
from app.db.pagination import Page


def normalize_email(email: str) -> str:
    """Return the one form of an address that is stored, looked up and compared.

    Every email the API receives goes through here before any look-up (registration, login,
    reset, email change, the first superuser, an issuer's claim), so equivalent spellings are
    one account: the text is trimmed and put in Unicode NFC (a decomposed `é` is the composed
    one), the domain goes through IDNA (a fullwidth `example.com` is the ASCII one,
    `xn--caf-dma.com` is `café.com`), and the whole is lower-cased. Only an address is one:
    `Eve <eve@example.com>` is a header's mailbox with a display name, not an address (pydantic's
    `validate_email` would read it as `eve@example.com`). Nor is one written to pass for
    another (`_refuse_lookalike`): a fullwidth, Cyrillic or Armenian letter among Latin ones.

    Raises:
        ValueError: `email` is not an address (a pydantic error, so a schema reports it).
    """
    # A line break is refused before trimming: `a@example.com\n` is not an address either.
    if "\r" in email or "\n" in email:
        raise ValueError("value is not a valid email address: it holds a line break")
    try:
        address = email_validator.validate_email(email.strip(), check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise ValueError(f"value is not a valid email address: {exc}") from None
    for part in (address.local_part, *address.domain.split(".")):
        _refuse_lookalike(part)
    return address.normalized.lower()


# Unicode's "highly restrictive" profile (UTS #39, 5.2): a part is in one script, or in Latin
# with the scripts written together in Japanese, Chinese or Korean. Any other mix is a letter
# that passes for another's: Cyrillic U+0430 or Armenian U+0585 among Latin ones.
_WRITTEN_TOGETHER = tuple(
    frozenset({"LATIN", "CJK", "IDEOGRAPHIC", *scripts})
    for scripts in (("HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA"), ("BOPOMOFO",), ("HANGUL",))
)


def _script(char: str) -> str:
    # Unicode names a letter by its script first (`ARMENIAN SMALL LETTER OH`); the letters
    # whose names say otherwise (fullwidth, mathematical, modifier) are compatibility
    # characters, refused before this is asked.
    return unicodedata.name(char, "").partition(" ")[0]


def _refuse_lookalike(part: str) -> None:
    """Refuse a local part or domain label written to pass for another address.

    The domain went through IDNA, which maps fullwidth letters to ASCII; a local part is
    compared as written, so `alice` with a fullwidth `a` (U+FF41) or a Cyrillic one (U+0430)
    would be an account of its own that shows as `alice`'s. A compatibility character (one
    NFKC changes: fullwidth, ligatures) is refused, as is a part whose letters mix scripts
    beyond what `_WRITTEN_TOGETHER` allows (digits and marks belong to none). A part in one
    script is kept, as are kanji with kana, or with Latin letters.
    """
    if unicodedata.normalize("NFKC", part) != part:
        raise ValueError("value is not a valid email address: it holds a compatibility character")
    if part.isascii():  # the common case: one script, nothing to look up
        return
    scripts = {_script(char) for char in part if char.isalpha()}
    if len(scripts) > 1 and not any(scripts <= allowed for allowed in _WRITTEN_TOGETHER):
        raise ValueError("value is not a valid email address: it mixes look-alike scripts")


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
    str, AfterValidator(normalize_email), WithJsonSchema(_EMAIL_SCHEMA, mode="validation")
]
Password = Annotated[Text, Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)]
# More than whitespace, stored trimmed (as an item's title).
FullName = Annotated[
    str,
    StringConstraints(pattern=NOT_BLANK_PATTERN, min_length=1, max_length=200),
    AfterValidator(trim_blanks),
]
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
    """Changes a user may make to their own account (not the email: that is confirmed by mail)."""

    model_config = ConfigDict(extra="forbid")

    full_name: FullName | None = None


class EmailChange(BaseModel):
    """Move the account to a new email, proven by the current password or a recent login."""

    model_config = ConfigDict(extra="forbid")

    email: Email
    current_password: CurrentPassword | None = None


_FLAGS = ("is_active", "is_superuser")


class UserAdminUpdate(BaseModel):
    """Changes a superuser may make to any account.

    Changing `is_active` or `is_superuser` needs the superuser's `current_password`, or a login
    of the last FRESH_LOGIN_SECONDS; never an API key. A new name alone needs neither.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra=not_nullable(*_FLAGS))

    full_name: FullName | None = None  # null clears it
    is_active: Bool | None = None
    is_superuser: Bool | None = None
    current_password: CurrentPassword | None = None

    @field_validator(*_FLAGS, mode="before")
    @classmethod
    def _true_or_false(cls, value: object) -> object:
        """Refuse `null` for a flag: omitted, it stays as it is; sent, it is true or false."""
        if value is None:
            raise ValueError("Input should be true or false, not null")
        return value


class AccountDeletion(BaseModel):
    """Deleting an account: the caller's `current_password`, unless they logged in just now.

    Without it, the caller's login must be of the last FRESH_LOGIN_SECONDS; never an API key.
    """

    model_config = ConfigDict(extra="forbid")

    current_password: CurrentPassword | None = None


class PasswordChange(BaseModel):
    """A password change, proven by the current password."""

    model_config = ConfigDict(extra="forbid")

    current_password: CurrentPassword
    new_password: Password


class UserPage(Page[UserRead]):
    """One page of users."""
