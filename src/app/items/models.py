"""The example domain: items that users own, price, tag and soft-delete."""

import uuid
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db.base import Base, SoftDeleteMixin, TimestampMixin, UUIDPrimaryKeyMixin

PRICE_SCALE = 4
# Prices are stored as whole 1/10 000ths in a 64-bit integer: exact on every database (SQLite
# would turn a NUMERIC into a float). 14 integer digits keep the largest price in range.
PRICE_DIGITS = 18
PRICE_UNIT = Decimal(1).scaleb(-PRICE_SCALE)


def price_scale(price: Decimal) -> int:
    """The number of decimals written in `price` ("19.90" has 2)."""
    exponent = price.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def price_of(units: int, scale: int) -> Decimal:
    """The price stored as `units` 1/10 000ths with `scale` decimals ("19.90": 199000, 2)."""
    return (Decimal(units) * PRICE_UNIT).quantize(Decimal(1).scaleb(-scale))


class ItemStatus(StrEnum):
    """Where an item is in its life."""

    DRAFT = "draft"
    ACTIVE = "active"
    ARCHIVED = "archived"


class Item(UUIDPrimaryKeyMixin, TimestampMixin, SoftDeleteMixin, Base):
    """An item; `version` grows by one on every change and backs its ETag."""

    __tablename__ = "items"
    __table_args__ = (
        CheckConstraint("price_units >= 0", name="price_not_negative"),
        CheckConstraint(f"price_scale BETWEEN 0 AND {PRICE_SCALE}", name="price_scale_range"),
        # The list's default order and its keyset cursor, per owner.
        Index("ix_items_owner_id_created_at_id", "owner_id", "created_at", "id"),
    )

    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[ItemStatus] = mapped_column(
        Enum(ItemStatus, name="item_status", native_enum=False, length=16,
             values_callable=lambda members: [m.value for m in members]),
        default=ItemStatus.DRAFT,
    )  # fmt: skip
    price_units: Mapped[int] = mapped_column(BigInteger)
    # The number of decimals the client sent: "19.90" comes back as "19.90", not "19.9".
    price_scale: Mapped[int] = mapped_column(SmallInteger)
    currency: Mapped[str] = mapped_column(String(3))
    version: Mapped[int] = mapped_column(default=1)
    tag_rows: Mapped[list["ItemTag"]] = relationship(
        lazy="raise", cascade="all, delete-orphan", order_by="ItemTag.position"
    )

    # SQLAlchemy checks and increments `version` in every UPDATE: a concurrent writer fails.
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012

    @property
    def price(self) -> Decimal:
        """The price, with the decimals it was given ("19.90" stays "19.90")."""
        return price_of(self.price_units, self.price_scale)

    @price.setter
    def price(self, value: Decimal) -> None:
        self.price_units = int(value / PRICE_UNIT)
        self.price_scale = price_scale(value)

    @property
    def tags(self) -> list[str]:
        """The item's tags, in the order they were given."""
        return [row.tag for row in self.tag_rows]

    @property
    def etag(self) -> str:
        """A strong ETag: the same for the same version of this item."""
        return f'"{self.version}"'


class ItemTag(Base):
    """One tag of an item (a row each, so `tag=` filters use an index)."""

    __tablename__ = "item_tags"

    item_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(SmallInteger)
