"""Titles and tags: the OpenAPI document accepts exactly what the API accepts.

They are trimmed before they are stored, so the schema speaks of them as sent: their length,
"not blank" as a pattern, unique tags. Each generated value is judged by the document's JSON
Schema (Python's regex engine) and by the request model (pydantic's Rust one); the verdicts
must agree, whitespace of every kind included.
"""

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from pydantic import TypeAdapter, ValidationError

from app.items.schemas import ItemCreate, Tags, Title

# ASCII whitespace (trimmed), other Unicode whitespace (kept as text), NUL (refused), letters.
CHARACTERS = st.sampled_from([" ", "\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x85", "\u00a0",
                              "\u2028", "\u3000", "\ufeff", "\x00", "a", "Z", "é"])  # fmt: skip
PROPERTIES = ItemCreate.model_json_schema()["properties"]


def accepted_by_schema(schema: dict[str, Any], value: object) -> bool:
    return bool(Draft202012Validator(schema).is_valid(value))


def accepted_by_model(adapter: TypeAdapter[Any], value: object) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


@settings(max_examples=400)
@given(st.text(CHARACTERS, max_size=8) | st.text(CHARACTERS, min_size=195, max_size=205))
def test_a_title_is_accepted_as_the_schema_says(title: str) -> None:
    assert accepted_by_schema(PROPERTIES["title"], title) == accepted_by_model(
        TypeAdapter(Title), title
    )


@settings(max_examples=400)
@given(st.lists(st.text(CHARACTERS, max_size=4) | st.text(CHARACTERS, min_size=30, max_size=34),
                max_size=22))  # fmt: skip
def test_tags_are_accepted_as_the_schema_says(tags: list[str]) -> None:
    assert accepted_by_schema(PROPERTIES["tags"], tags) == accepted_by_model(
        TypeAdapter(Tags), tags
    )


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        (["  Lamp  "], ["Lamp"]),
        ([" a", "a ", "b"], ["a", "b"]),  # distinct as sent, one tag once trimmed
        (["\u00a0"], ["\u00a0"]),  # not the whitespace trimmed: text like any other
    ],
)
def test_tags_are_trimmed_and_kept_once(sent: list[str], stored: list[str]) -> None:
    assert TypeAdapter(Tags).validate_python(sent) == stored
