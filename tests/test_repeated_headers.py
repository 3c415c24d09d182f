"""A request header that takes one value, sent twice, is a 422 naming it, on every operation.

Starlette reads the first of repeated headers; a proxy in front may read the last. A credential
or an idempotency key sent twice is refused (RFC 9110 section 5.3: none of them is a list),
as a repeated query parameter is. The headers come from the document: a security scheme or a
header parameter added later must be in `SINGLE_VALUE_HEADERS`, or the first test fails.
"""

import json
from pathlib import Path
from typing import Any

import pytest
from httpx2 import AsyncClient

from app.core.routing import SINGLE_VALUE_HEADERS
from app.middleware.content_validation import REPEATED_HEADER
from tests.harness import assert_problem

pytestmark = pytest.mark.anyio

DOCUMENT: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[1] / "openapi.json").read_text()
)
AN_ID = "0a1b2c3d-4e5f-4a6b-8c7d-8e9fabcdef01"
# Conditional headers are lists of entity tags: two field lines are one list (RFC 9110 5.3).
LISTS = {"if-match", "if-none-match"}
SINGLE = {name.lower() for name in SINGLE_VALUE_HEADERS}


def _header_names(document: dict[str, Any]) -> set[str]:
    schemes = document["components"]["securitySchemes"].values()
    names = {s["name"] for s in schemes if s["type"] == "apiKey" and s["in"] == "header"}
    if any(s["type"] in ("http", "oauth2") for s in schemes):
        names.add("Authorization")
    names.update(
        parameter["name"]
        for item in document["paths"].values()
        for operation in item.values()
        for parameter in operation.get("parameters", ())
        if parameter["in"] == "header"
    )
    return {name.lower() for name in names}


def test_every_header_the_document_reads_is_single_valued_or_a_list() -> None:
    names = _header_names(DOCUMENT)
    assert {"authorization", "x-api-key", "idempotency-key"} <= names
    assert names - LISTS <= SINGLE


SECURED = sorted(
    (method.upper(), path.replace("{item_id}", AN_ID).replace("{user_id}", AN_ID))
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    if operation.get("security")
)


@pytest.mark.parametrize(("method", "path"), SECURED, ids=[f"{m} {p}" for m, p in SECURED])
async def test_two_authorization_headers_are_refused(
    shared_client: AsyncClient, shared_caller: dict[str, str], method: str, path: str
) -> None:
    sent = [("Authorization", shared_caller["Authorization"]), ("Authorization", "Bearer other")]
    problem = assert_problem(await shared_client.request(method, path, headers=sent), 422)
    assert problem["errors"] == [{"header": "Authorization", "detail": REPEATED_HEADER}]


@pytest.mark.parametrize("name", ["X-API-Key", "Idempotency-Key", "Content-Type"])
async def test_each_single_valued_header_sent_twice_is_refused(
    shared_client: AsyncClient, shared_caller: dict[str, str], name: str
) -> None:
    values = {"X-API-Key": "pfb_a", "Idempotency-Key": "k", "Content-Type": "application/json"}
    sent = [*shared_caller.items(), (name, values[name]), (name, values[name])]
    response = await shared_client.post("/api/v1/items", content=b"{}", headers=sent)
    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"] == [{"header": name, "detail": REPEATED_HEADER}]
