"""Types every request schema builds on."""

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, StrictBool, StringConstraints

# PostgreSQL cannot store a NUL character in text. Refused in the schema, it is a 422 on every
# database, documented in OpenAPI, instead of a 500 from the driver.
NO_NUL_PATTERN = r"^[^\x00]*$"

Text = Annotated[str, StringConstraints(pattern=NO_NUL_PATTERN)]
"""Any text a client sends: every string field of a request schema is `Text` or narrower."""

# Text that must hold more than whitespace (a title, a tag) and is stored trimmed. The schema
# states what is accepted as sent: its length before trimming, and "not blank" as a pattern.
# Whitespace is spelled out: JSON Schema (ECMA-262), Python's `re` and pydantic's Rust regex
# disagree on what `\s` covers, and each of them must read the pattern the same way.
BLANKS = " \t\n\v\f\r"
NOT_BLANK_PATTERN = r"^[^\x00]*[^\x00\t\n\v\f\r ][^\x00]*$"


def trim_blanks(value: str) -> str:
    """Remove the whitespace of `NOT_BLANK_PATTERN` from both ends of `value`.

    Use after the constraints, in the same `StringConstraints`:
    `Annotated[str, StringConstraints(pattern=NOT_BLANK_PATTERN, max_length=n),
    AfterValidator(trim_blanks)]`, so the length checked is the length sent.
    """
    return value.strip(BLANKS)


# Values exactly of the type the schema names. Pydantic's default (lax) mode also reads 1,
# "yes" and "on" as `true`, a Unix number as a date-time, "5_0", "+1" or " 1" as integers, and
# 32 bare hex digits, `{...}` or `urn:uuid:...` as a UUID: inputs the document forbids would be
# accepted. Every boolean, integer, date-time and UUID a client sends is one of these
# (tests/test_strict_inputs.py checks the document for any that is not).
Bool = StrictBool
"""A JSON `true` or `false`, nothing else."""

_INTEGER_TEXT = re.compile(r"-?[0-9]+")


def _integer(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be a whole number")
    if isinstance(value, str) and not _INTEGER_TEXT.fullmatch(value):
        raise ValueError("must be a whole number, written in digits")
    return value


Integer = Annotated[int, BeforeValidator(_integer)]
"""A whole number: a JSON integer, or in a query string its digits (with an optional `-`)."""

_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _date_time_text(value: object) -> object:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z")
    return value


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("outside the range of UTC timestamps") from exc


UTCInstant = Annotated[AwareDatetime, BeforeValidator(_date_time_text), AfterValidator(_in_utc)]
"""An RFC 3339 date-time with its offset (the schema's `date-time`), given back in UTC."""


# RFC 9562's string form, the one JSON Schema's `uuid` format names; either case, as it allows.
_UUID_TEXT = re.compile(
    r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
)


def _uuid_text(value: object) -> object:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str) or not _UUID_TEXT.fullmatch(value):
        raise ValueError("must be 8-4-4-4-12 hex digits, e.g. 123e4567-e89b-12d3-a456-426614174000")
    return value


Uuid = Annotated[uuid.UUID, BeforeValidator(_uuid_text)]
"""A UUID as hex digits in groups of 8-4-4-4-12 joined by hyphens (the schema's `uuid`)."""


def not_nullable(*names: str) -> Callable[[dict[str, Any]], None]:
    """A model's `json_schema_extra` showing the members `names` as optional but not nullable.

    For a change where leaving a member out keeps it and `null` is refused (by the model or its
    service): pydantic documents an `X | None = None` member as nullable.
    """

    def drop_null(schema: dict[str, Any]) -> None:
        for name in names:
            member = schema["properties"][name]
            member.update(next(o for o in member.pop("anyOf") if o.get("type") != "null"))

    return drop_null
