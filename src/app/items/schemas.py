"""Item API schemas: money travels as a string, never a float."""

import re
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)

from app.core.types import NOT_BLANK_PATTERN, Text, UTCInstant, Uuid, not_nullable, trim_blanks
from app.db.pagination import MAX_OFFSET, Page, PageQuery
from app.items.currencies import ISO_4217
from app.items.models import PRICE_DIGITS, PRICE_SCALE, Item, ItemStatus, price_scale

__all__ = ["MAX_OFFSET", "ItemCreate", "ItemPage", "ItemQuery", "ItemRead", "ItemUpdate"]

MAX_TAGS = 20
MAX_DESCRIPTION = 10_000


def _iso_4217(code: str) -> str:
    if code not in ISO_4217:
        raise ValueError("not an ISO 4217 currency code")
    return code


def _decimal_string(value: object) -> object:
    # Exactly what the schema's pattern says: no float (inexact), no int, no "+5" or "1e2".
    if not isinstance(value, str) or not re.fullmatch(PRICE_PATTERN, value):
        raise ValueError('send the price as a decimal string, e.g. "19.90"')
    return value


def _exact_price(value: Decimal) -> Decimal:
    # Pydantic does not count trailing zeros as decimal places; "1.50000" has five.
    if price_scale(value) > PRICE_SCALE:
        raise ValueError(f"at most {PRICE_SCALE} decimal places")
    return value.copy_abs() if value.is_zero() else value  # "-0" is "0"


def _unique_as_sent(tags: object) -> object:
    # `uniqueItems` speaks of the tags as sent; anything but a list of strings is left to the
    # type check that follows.
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        return tags
    if len(set(tags)) != len(tags):
        raise ValueError("tags must be unique")
    return tags


def _once_each(tags: list[str]) -> list[str]:
    # " a" and "a" are distinct as sent and one tag once trimmed: kept once, where first seen.
    return list(dict.fromkeys(tags))


# Checked as sent (length, not blank), then trimmed: what the schema says is what is accepted.
Title = Annotated[
    str,
    StringConstraints(pattern=NOT_BLANK_PATTERN, min_length=1, max_length=200),
    AfterValidator(trim_blanks),
]
Description = Annotated[Text, Field(max_length=MAX_DESCRIPTION)]
Currency = Annotated[
    str,
    AfterValidator(_iso_4217),
    WithJsonSchema({"type": "string", "enum": sorted(ISO_4217), "description": "ISO 4217."}),
]
Tag = Annotated[
    str,
    StringConstraints(pattern=NOT_BLANK_PATTERN, min_length=1, max_length=32),
    AfterValidator(trim_blanks),
]
Tags = Annotated[
    list[Tag],
    Field(max_length=MAX_TAGS, json_schema_extra={"uniqueItems": True}),
    BeforeValidator(_unique_as_sent),
    AfterValidator(_once_each),
]
# Strings only on input ("19.90"): a JSON float would already have lost the exact value.
# A plain decimal string, checked by the same pattern the schema shows (ASCII digits only),
# with no leading zero (`"007.50"` would come back `"7.50"`, not as sent).
PRICE_PATTERN = (
    rf"^(0|[1-9][0-9]{{0,{PRICE_DIGITS - PRICE_SCALE - 1}}})(\.[0-9]{{1,{PRICE_SCALE}}})?$"
)
Price = Annotated[
    Decimal,
    BeforeValidator(_decimal_string),
    AfterValidator(_exact_price),
    Field(ge=0, max_digits=PRICE_DIGITS, decimal_places=PRICE_SCALE, strict=False),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": PRICE_PATTERN,
            "examples": ["19.90"],
            "description": f"A decimal string, at most {PRICE_SCALE} decimals; never a number.",
        }
    ),
]
PriceOut = Annotated[Decimal, PlainSerializer(lambda value: f"{value:f}", return_type=str)]


class ItemCreate(BaseModel):
    """A new item."""

    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description = ""
    status: ItemStatus = ItemStatus.DRAFT
    price: Price
    currency: Currency
    tags: Tags = []


# Members a merge patch may change but not remove (null): an item cannot do without them.
REQUIRED_MEMBERS = ("title", "status", "price", "currency")


class ItemUpdate(BaseModel):
    """A JSON merge patch (RFC 7396): only the members sent change; `null` removes one."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=not_nullable(*REQUIRED_MEMBERS))

    title: Title | None = None
    description: Description | None = None
    status: ItemStatus | None = None
    price: Price | None = None
    currency: Currency | None = None
    tags: Tags | None = None


class ItemRead(BaseModel):
    """An item as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    description: str
    status: ItemStatus
    price: PriceOut
    currency: str
    tags: list[str]
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, item: "Item") -> "ItemRead":
        """The item as shown, its price with the decimals it was given."""
        return cls.model_validate(item)

    @property
    def etag(self) -> str:
        """The same strong ETag as `Item.etag`."""
        return f'"{self.version}"'


Sort = Literal["created_at", "-created_at", "title", "-title", "price", "-price"]


class ItemQuery(PageQuery):
    """Filters, sorting and paging of the item list; unknown parameters are refused.

    Past `MAX_OFFSET`, page with `cursor`.
    """

    cursor: Text | None = Field(default=None, max_length=200)
    sort: Sort = "-created_at"
    status: ItemStatus | None = None
    tag: Tag | None = None
    q: Text | None = Field(default=None, min_length=1, max_length=200)
    created_after: UTCInstant | None = None
    created_before: UTCInstant | None = None
    owner_id: Uuid | None = None


class ItemPage(Page[ItemRead]):
    """One page of items: `total` in offset mode, `next_cursor` when a next page exists."""
