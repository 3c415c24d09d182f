"""API key schemas: the key itself appears once, in the creation response."""

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from app.auth.scopes import Scope
from app.core.security import PASSWORD_MAX_LENGTH
from app.core.types import NOT_BLANK_PATTERN, Text, UTCInstant, trim_blanks
from app.db.pagination import Page


class ApiKeyCreate(BaseModel):
    """A new key: a name, optional scopes (default: the caller's) and an optional expiry.

    From a session, `current_password` (or a login of the last few minutes) proves the caller.
    """

    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        str,
        StringConstraints(pattern=NOT_BLANK_PATTERN, min_length=1, max_length=100),
        AfterValidator(trim_blanks),
    ]
    scopes: list[Scope] | None = Field(default=None, min_length=1, max_length=len(Scope))
    expires_at: UTCInstant | None = Field(
        default=None,
        description="In the future (422 `expiry_in_the_past` otherwise). Default: "
        "API_KEY_DEFAULT_TTL_DAYS from now; at most API_KEY_MAX_TTL_DAYS, and never after the "
        "expiry of a key that creates it (422 `expiry_too_late`).",
    )
    current_password: Annotated[Text, Field(max_length=PASSWORD_MAX_LENGTH)] | None = None


class ApiKeyRead(BaseModel):
    """A key as listed: its visible prefix, never the key."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    """The creation response: the only time the key is shown."""

    key: str


class ApiKeyPage(Page[ApiKeyRead]):
    """One page of keys."""
