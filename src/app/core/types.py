"""Types every request schema builds on."""

from typing import Annotated

from pydantic import StringConstraints

# PostgreSQL cannot store a NUL character in text. Refused in the schema, it is a 422 on every
# database, documented in OpenAPI, instead of a 500 from the driver.
NO_NUL_PATTERN = r"^[^\x00]*$"

Text = Annotated[str, StringConstraints(pattern=NO_NUL_PATTERN)]
"""Any text a client sends: every string field of a request schema is `Text` or narrower."""
