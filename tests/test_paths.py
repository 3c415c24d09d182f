"""Every documented path answers only as written: a trailing slash is an unknown path.

Starlette redirects `/items/` to `/items` by default, with a 307 the document does not list
and a `Location` built from the request's `Host` header, so a client chooses the host it is
sent to. The test walks every operation of the document.
"""

import json
import re
from pathlib import Path

import pytest
from httpx2 import AsyncClient

from tests.harness import assert_problem

pytestmark = pytest.mark.anyio

DOCUMENT = Path(__file__).resolve().parents[1] / "openapi.json"
OPERATIONS = sorted(
    (method.upper(), path)
    for path, operations in json.loads(DOCUMENT.read_text())["paths"].items()
    for method in operations
)
AN_ID = "0a1b2c3d-4e5f-4a6b-8c7d-8e9fabcdef01"


@pytest.mark.parametrize(
    ("method", "path"), OPERATIONS, ids=[f"{method} {path}" for method, path in OPERATIONS]
)
async def test_a_trailing_slash_is_not_found_and_never_redirected(
    shared_client: AsyncClient, shared_caller: dict[str, str], method: str, path: str
) -> None:
    target = re.sub(r"\{[^}]+\}", AN_ID, path) + "/"
    headers = {**shared_caller, "Host": "elsewhere.test"}
    response = await shared_client.request(method, target, headers=headers)
    assert "location" not in response.headers
    assert_problem(response, 404)
