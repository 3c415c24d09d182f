"""Types every request schema builds on."""

from typing import Annotated

from pydantic import StringConstraints

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
