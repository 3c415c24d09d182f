"""Booleans, integers, date-times, UUIDs and emails are accepted only as the document types them.

Pydantic's default (lax) mode reads 1 or "yes" as `true`, a Unix number as a date-time,
"5_0" or "+1" as integers, bare hex digits or `urn:uuid:...` as a UUID, and its email
validator `Eve <eve@example.com>` as an address: values the OpenAPI document forbids. The
first test finds every such input in the document, so a new one cannot be left out of the
second, which sends each one values of that kind and expects 422, and one good value and
expects it read (served, or for an id that names nothing, 404).
"""

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI, Query
from httpx2 import AsyncClient

from app.main import _single_value_parameters
from app.middleware.content_validation import REPEATED
from tests.identity import DEFAULT_PASSWORD, register, signed_up, unique_email
from tests.security.helpers import make_superuser

pytestmark = pytest.mark.anyio

# The committed document: a test keeps it equal to what the app serves.
DOCUMENT = Path(__file__).resolve().parents[1] / "openapi.json"

# An id no row has, with every hex letter present so a spelling of it can change each one.
NOWHERE = uuid.UUID("0a1b2c3d-4e5f-4a6b-8c7d-8e9fabcdef01")
TOMORROW = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
BAD: dict[str, list[Any]] = {
    "boolean": [1, 0, 1.0, "true", "yes", "on", "1"],
    "integer": ["1.0", "5_0", "+1", " 1", "1 ", "1e1", "0x10", "\uff11"],
    "date-time": [
        1812000000,
        "1812000000",
        1812000000.5,
        "2030-01-01T00:00Z",
        "2030-01-01 00:00:00Z",
        "2030-01-01",
        "2030-01-01T00:00:00",
    ],
    "uuid": [
        NOWHERE.hex,
        f"{{{NOWHERE}}}",
        f"urn:uuid:{NOWHERE}",
        str(NOWHERE)[:8] + str(NOWHERE)[9:],
        f" {NOWHERE}",
        f"{NOWHERE}0",
        str(NOWHERE).replace("-", "_"),
        str(NOWHERE).replace("a", "\uff41"),
    ],
    # A mailbox with a display name is a header's syntax, not an address.
    "email": [
        "Eve <eve@example.com>",
        '"Eve" <eve@example.com>',
        "<eve@example.com>",
        "eve@example.com\n",
    ],
}
# Upper-case hex digits are the same UUID (RFC 9562 reads either case).
GOOD = {"boolean": True, "integer": "5", "date-time": TOMORROW, "uuid": str(NOWHERE).upper()}
# (operation, where, name) -> the kind of value the document gives it.
INPUTS = {
    ("PATCH /api/v1/users/{user_id}", "body", "is_active"): "boolean",
    ("PATCH /api/v1/users/{user_id}", "body", "is_superuser"): "boolean",
    ("POST /api/v1/api-keys", "body", "expires_at"): "date-time",
    ("GET /api/v1/api-keys", "query", "limit"): "integer",
    ("GET /api/v1/api-keys", "query", "offset"): "integer",
    ("GET /api/v1/items", "query", "limit"): "integer",
    ("GET /api/v1/items", "query", "offset"): "integer",
    ("GET /api/v1/items", "query", "created_after"): "date-time",
    ("GET /api/v1/items", "query", "created_before"): "date-time",
    ("GET /api/v1/jobs", "query", "limit"): "integer",
    ("GET /api/v1/jobs", "query", "offset"): "integer",
    ("GET /api/v1/users", "query", "limit"): "integer",
    ("GET /api/v1/users", "query", "offset"): "integer",
    ("GET /api/v1/items", "query", "owner_id"): "uuid",
    ("GET /api/v1/items/{item_id}", "path", "item_id"): "uuid",
    ("PATCH /api/v1/items/{item_id}", "path", "item_id"): "uuid",
    ("DELETE /api/v1/items/{item_id}", "path", "item_id"): "uuid",
    ("POST /api/v1/items/{item_id}/restore", "path", "item_id"): "uuid",
    ("GET /api/v1/api-keys/{key_id}", "path", "key_id"): "uuid",
    ("DELETE /api/v1/api-keys/{key_id}", "path", "key_id"): "uuid",
    ("GET /api/v1/jobs/{job_id}", "path", "job_id"): "uuid",
    ("GET /api/v1/jobs/{job_id}/result", "path", "job_id"): "uuid",
    ("GET /api/v1/users/{user_id}", "path", "user_id"): "uuid",
    ("PATCH /api/v1/users/{user_id}", "path", "user_id"): "uuid",
    ("DELETE /api/v1/users/{user_id}", "path", "user_id"): "uuid",
    ("POST /api/v1/users", "body", "email"): "email",
    ("POST /api/v1/users/me/email", "body", "email"): "email",
    ("POST /api/v1/auth/password-reset", "body", "email"): "email",
}


def _kind(schema: dict[str, Any], components: dict[str, Any]) -> str | None:
    if "$ref" in schema:
        return _kind(components[schema["$ref"].rsplit("/", 1)[1]], components)
    for option in schema.get("anyOf", ()):
        if kind := _kind(option, components):
            return kind
    if schema.get("format") in ("date-time", "uuid", "email"):
        return str(schema["format"])
    return schema.get("type") if schema.get("type") in ("boolean", "integer") else None


def typed_inputs(document: dict[str, Any]) -> dict[tuple[str, str, str], str]:
    """Every boolean, integer and date-time input of every operation, by where it goes."""
    components = document["components"]["schemas"]
    found = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            name = f"{method.upper()} {path}"
            for parameter in operation.get("parameters", ()):
                if kind := _kind(parameter["schema"], components):
                    found[(name, parameter["in"], parameter["name"])] = kind
            content = operation.get("requestBody", {}).get("content", {})
            for media in content.values():
                body = media["schema"]
                body = components[body["$ref"].rsplit("/", 1)[1]] if "$ref" in body else body
                for field, schema in body.get("properties", {}).items():
                    if kind := _kind(schema, components):
                        found[(name, "body", field)] = kind
    return found


def test_every_typed_input_of_the_document_is_tested() -> None:
    assert typed_inputs(json.loads(DOCUMENT.read_text())) == INPUTS


async def _request(
    client: AsyncClient,
    headers: dict[str, str],
    target: str,
    case: tuple[str, str, str],
    value: Any,
) -> Any:
    operation, where, name = case
    method, path = operation.split(" ")
    if where == "path":
        path = path.replace(f"{{{name}}}", quote(str(value), safe=""))
        # An empty merge patch: the body is valid, only the id is on trial.
        patch: dict[str, Any] | None = {} if method == "PATCH" else None
        return await client.request(method, path, json=patch, headers=headers)
    path = path.replace("{user_id}", target)
    if where == "query":
        return await client.request(method, path, params={name: value}, headers=headers)
    body: dict[str, Any] = {name: value}
    if path.endswith("/api-keys"):
        body["name"] = "strict"
    if path.endswith("/users"):
        body["password"] = DEFAULT_PASSWORD
    if path.endswith("/me/email"):
        body["current_password"] = DEFAULT_PASSWORD
    return await client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize("case", sorted(INPUTS))
async def test_only_values_of_the_documented_type_are_accepted(
    app: FastAPI, client: AsyncClient, case: tuple[str, str, str]
) -> None:
    email = unique_email("strict")
    headers = await signed_up(client, email)
    await make_superuser(app, email)
    target = (await register(client, unique_email("target")))["id"]
    kind = INPUTS[case]
    for value in BAD[kind]:
        response = await _request(client, headers, target, case, value)
        assert response.status_code == 422, (value, response.text)
        [error] = response.json()["errors"]
        named = error.get("pointer", "#/" + error.get("parameter", ""))
        assert named == f"#/{case[2]}", error
    good_value = unique_email("strict-good") if kind == "email" else GOOD[kind]
    good = await _request(client, headers, target, case, good_value)
    # An id in the path names no row: read as an id, it is not found.
    assert good.status_code == 404 if case[1] == "path" else good.status_code < 300, good.text


QUERIED = sorted(
    f"{method.upper()} {path}"
    for path, operations in json.loads(DOCUMENT.read_text())["paths"].items()
    for method, operation in operations.items()
    if any(parameter["in"] == "query" for parameter in operation.get("parameters", ()))
)


def test_the_lists_are_the_operations_with_query_parameters() -> None:
    assert len(QUERIED) == 4, QUERIED


@pytest.mark.parametrize("operation", QUERIED)
async def test_a_query_parameter_the_operation_does_not_know_is_refused(
    app: FastAPI, client: AsyncClient, operation: str
) -> None:
    email = unique_email("unknown")
    headers = await signed_up(client, email)
    await make_superuser(app, email)
    method, path = operation.split(" ")
    # A misspelt `limit`: served, it would be a page of the default size.
    response = await client.request(method, path, params={"limt": "5"}, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {"detail": "Extra inputs are not permitted", "parameter": "limt"}
    ]
    assert (await client.request(method, path, params={"limit": "5"}, headers=headers)).is_success


# Every query parameter of the document: none takes many values (a test below checks one that
# does may be repeated).
EVERY_QUERY_PARAMETER = sorted(
    f"{method.upper()} {path} {parameter['name']}"
    for path, item in json.loads(DOCUMENT.read_text())["paths"].items()
    for method, operation in item.items()
    for parameter in operation.get("parameters", ())
    if parameter["in"] == "query"
)


@pytest.mark.parametrize("case", EVERY_QUERY_PARAMETER)
async def test_a_query_parameter_given_twice_is_refused_naming_it(
    shared_client: AsyncClient, case: str
) -> None:
    """One value would be dropped without a word, and a filter in front may read the other."""
    method, path, name = case.split(" ")
    other = "limit" if name != "limit" else "offset"
    params: list[tuple[str, str | int | float | bool | None]] = [(name, "5"), (other, "1")]
    params.append((name, "6"))
    response = await shared_client.request(method, path, params=params)
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [{"parameter": name, "detail": REPEATED}]
    assert (await shared_client.head(path, params=params)).status_code == 422


def test_parameters_that_take_many_values_may_be_repeated() -> None:
    app = FastAPI()

    @app.get("/things/{thing_id}")
    def things(
        thing_id: int, limit: int = 5, tag: Annotated[list[str] | None, Query()] = None
    ) -> None:
        """A list that takes many tags."""

    single_valued = _single_value_parameters(app)
    assert single_valued("GET", "/things/7") == {"limit"}
    assert single_valued("POST", "/things/7") == frozenset()
