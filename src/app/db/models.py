"""The model registry: import every domain's models here so Alembic sees all tables."""

from app.db.base import Base

__all__ = ["Base"]
