"""The model registry: import every domain's models here so Alembic sees all tables."""

from app.api_keys.models import ApiKey
from app.auth.models import ActionToken, LoginFailure, RefreshToken
from app.db.base import Base
from app.idempotency.models import IdempotencyKey
from app.items.models import Item, ItemTag
from app.users.models import User

__all__ = [
    "ActionToken",
    "ApiKey",
    "Base",
    "IdempotencyKey",
    "Item",
    "ItemTag",
    "LoginFailure",
    "RefreshToken",
    "User",
]
