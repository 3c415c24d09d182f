"""Models that exist only in tests, on their own metadata so migrations never see them."""

import uuid

from sqlalchemy import ForeignKey, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.db.base import (
    NAMING_CONVENTION,
    Base,
    SoftDeleteMixin,
    TimestampMixin,
    UUIDPrimaryKeyMixin,
)


class ScratchBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = Base.type_annotation_map


class Widget(UUIDPrimaryKeyMixin, TimestampMixin, SoftDeleteMixin, ScratchBase):
    __tablename__ = "scratch_widget"

    name: Mapped[str] = mapped_column(String(50), unique=True)


class Part(UUIDPrimaryKeyMixin, ScratchBase):
    __tablename__ = "scratch_part"

    widget_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("scratch_widget.id"))
