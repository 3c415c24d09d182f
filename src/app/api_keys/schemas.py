"""API key schemas: the key itself appears once, in the creation response."""

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from app.auth.scopes import Scope
from app.db.pagination import Page


class ApiKeyCreate(BaseModel):
    """A new key: a name, optional scopes (default: all) and an optional expiry."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=100)]
    scopes: list[Scope] | None = Field(default=None, max_length=len(Scope))
    expires_at: AwareDatetime | None = None


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
