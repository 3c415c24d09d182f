"""Every operation reads its body only in the media types the document gives it, uncoded.

The pipeline's allowlist admits every type some operation reads (JSON, merge patch, forms),
and FastAPI parses a form for a form route whatever its type and any `+json` for a JSON route:
a login took `multipart/form-data`, a new item `application/merge-patch+json`. The test walks
every operation with a request body in the document and sends it each other type: a 415 that
names exactly the documented types.
"""

import json
from pathlib import Path
from typing import Any

import pytest
from httpx2 import AsyncClient, Response

from app.middleware.content_validation import DEFAULT_ALLOWED_MEDIA_TYPES
from tests.harness import assert_problem

pytestmark = pytest.mark.anyio

DOCUMENT = Path(__file__).resolve().parents[1] / "openapi.json"
AN_ID = "0a1b2c3d-4e5f-4a6b-8c7d-8e9fabcdef01"
BODIES = {
    "application/json": b"{}",
    "application/merge-patch+json": b"{}",
    "application/x-www-form-urlencoded": b"a=1",
    "multipart/form-data; boundary=b": b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n'
    b"1\r\n--b--\r\n",
}


def _bodies(document: dict[str, Any]) -> dict[str, list[str]]:
    return {
        f"{method.upper()} {path}": sorted(operation["requestBody"]["content"])
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    }


READ = _bodies(json.loads(DOCUMENT.read_text()))
CASES = sorted(
    (operation, sent)
    for operation, documented in READ.items()
    for sent in BODIES
    if sent.split(";")[0] not in documented
)


def test_every_operation_reads_a_type_of_the_allowlist() -> None:
    assert {media for types in READ.values() for media in types} <= set(DEFAULT_ALLOWED_MEDIA_TYPES)
    assert len(CASES) == 3 * len(READ) - 1  # one operation reads two types


async def _send(
    client: AsyncClient, operation: str, sent: str, headers: dict[str, str]
) -> Response:
    """Send `operation` (`"POST /path"`) a body of type `sent`."""
    method, path = operation.split(" ")
    return await client.request(
        method,
        path.replace("{item_id}", AN_ID).replace("{user_id}", AN_ID),
        content=BODIES[sent],
        headers=headers,
    )


@pytest.mark.parametrize(
    ("operation", "sent"), CASES, ids=[f"{operation} {sent}" for operation, sent in CASES]
)
async def test_a_body_of_another_type_is_refused(
    shared_client: AsyncClient, shared_caller: dict[str, str], operation: str, sent: str
) -> None:
    headers = {**shared_caller, "Content-Type": sent}
    response = await _send(shared_client, operation, sent, headers)
    problem = assert_problem(response, 415, "unsupported_media_type")
    assert problem["detail"] == f"The request body must be one of: {', '.join(READ[operation])}."


DOCUMENTED = sorted((operation, types[0]) for operation, types in READ.items())


@pytest.mark.parametrize(
    ("operation", "sent"), DOCUMENTED, ids=[operation for operation, _ in DOCUMENTED]
)
async def test_a_content_coded_body_is_refused(
    shared_client: AsyncClient, shared_caller: dict[str, str], operation: str, sent: str
) -> None:
    # Nothing decodes a request body: a gzip one would be parsed as if it were plain.
    coded = {**shared_caller, "Content-Type": sent, "Content-Encoding": "gzip"}
    response = await _send(shared_client, operation, sent, coded)
    assert_problem(response, 415, "unsupported_content_encoding")
    assert response.headers["accept-encoding"] == "identity"
