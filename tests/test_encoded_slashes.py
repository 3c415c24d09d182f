"""No operation is reached through a path that spells a `/` as `%2F`.

The router decodes the path before matching it, so `/api/v1%2Fusers%2Fme` was served as
`/api/v1/users/me`: a URI the document does not list, which a proxy or filter matching the
raw path never recognises. Every path of the document, each `/` in turn encoded, is a 400.
"""

import json
from pathlib import Path

import pytest
from httpx2 import AsyncClient

from tests.harness import assert_problem

pytestmark = pytest.mark.anyio

DOCUMENT = json.loads((Path(__file__).resolve().parents[1] / "openapi.json").read_text())
AN_ID = "0a1b2c3d-4e5f-4a6b-8c7d-8e9fabcdef01"
CASES = sorted(
    (method.upper(), path, index)
    for path, item in DOCUMENT["paths"].items()
    for method in item
    for index in range(1, path.count("/"))
)


def _encoded(path: str, index: int) -> str:
    """`path` with its `index`-th slash (the first is the root's, never encoded) as `%2F`."""
    parts = path.replace("{item_id}", AN_ID).replace("{user_id}", AN_ID).split("/")
    parts = [part.replace("{key_id}", AN_ID).replace("{job_id}", AN_ID) for part in parts]
    return "/".join(parts[: index + 1]) + "%2F" + "/".join(parts[index + 1 :])


@pytest.mark.parametrize(
    ("method", "path", "index"), CASES, ids=[f"{m} {p} {i}" for m, p, i in CASES]
)
async def test_a_path_with_an_encoded_slash_is_refused(
    shared_client: AsyncClient, shared_caller: dict[str, str], method: str, path: str, index: int
) -> None:
    response = await shared_client.request(method, _encoded(path, index), headers=shared_caller)
    assert_problem(response, 400, "invalid_characters")
