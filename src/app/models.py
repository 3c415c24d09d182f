"""The model registry: every domain's models, imported so Alembic sees all tables.

It sits at the top of the package, not in `db/`: the database layer knows no domain.
"""

from app.api_keys.models import ApiKey
from app.auth.models import ActionToken, LoginFailure, RefreshToken
from app.db.base import Base
from app.idempotency.models import IdempotencyKey
from app.items.models import Item, ItemTag
from app.jobs.models import Job
from app.users.models import User

__all__ = [
    "ActionToken",
    "ApiKey",
    "Base",
    "IdempotencyKey",
    "Item",
    "ItemTag",
    "Job",
    "LoginFailure",
    "RefreshToken",
    "User",
]
