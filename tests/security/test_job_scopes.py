"""A job's result is data of other domains: reading it takes the scopes that reading them takes."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient

from app.auth.scopes import ALL_SCOPES
from app.core.config import Settings
from app.jobs.deps import result_scopes
from app.jobs.models import Job
from tests.harness import assert_problem, started
from tests.identity import signed_up
from tests.items.helpers import create_item
from tests.security.helpers import create_key

ALICE = "alice@example.com"
EXPORT = "/api/v1/users/me/export"

pytestmark = pytest.mark.anyio


@pytest.fixture
async def jobs_app(
    settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    async with started(settings, JOBS_RESULTS_DIR=str(tmp_path / "results")) as (app, client):
        yield app, client


@pytest.mark.parametrize(
    "scopes",
    [["jobs:read"], ["jobs:read", "items:read"], ["jobs:read", "users:read"]],
    ids=["jobs-only", "without-users-read", "without-items-read"],
)
async def test_a_key_without_the_exports_scopes_cannot_download_it(
    jobs_app: tuple[FastAPI, AsyncClient], scopes: list[str]
) -> None:
    _, client = jobs_app
    alice = await signed_up(client, ALICE)
    await create_item(client, alice, title="Secret plans")
    job = (await client.post(EXPORT, headers=alice)).json()
    created = await create_key(client, alice, scopes=scopes)
    assert created.status_code == 201, created.text
    narrow = {"X-API-Key": created.json()["key"]}

    seen = await client.get(f"/api/v1/jobs/{job['id']}", headers=narrow)
    assert seen.status_code == 200  # the job's status is the jobs scope's
    assert seen.json()["result_url"] is None
    download = await client.get(f"/api/v1/jobs/{job['id']}/result", headers=narrow)
    assert_problem(download, 403, "insufficient_scope")
    assert b"Secret plans" not in download.content


async def test_a_key_with_the_exports_scopes_reads_it_and_lists_show_the_same(
    jobs_app: tuple[FastAPI, AsyncClient],
) -> None:
    _, client = jobs_app
    alice = await signed_up(client, ALICE)
    await create_item(client, alice, title="Lamp")
    job = (await client.post(EXPORT, headers=alice)).json()
    scopes = ["jobs:read", "users:read", "items:read"]
    full = {"X-API-Key": (await create_key(client, alice, scopes=scopes)).json()["key"]}
    narrow = {"X-API-Key": (await create_key(client, alice, scopes=["jobs:read"])).json()["key"]}

    download = await client.get(f"/api/v1/jobs/{job['id']}/result", headers=full)
    assert download.status_code == 200
    assert b"Lamp" in download.content
    [listed] = (await client.get("/api/v1/jobs", headers=full)).json()["items"]
    assert listed["result"] == {"items": 1}
    assert listed["result_url"] is not None
    [hidden] = (await client.get("/api/v1/jobs", headers=narrow)).json()["items"]
    assert (hidden["status"], hidden["result"], hidden["result_url"]) == ("succeeded", None, None)


async def test_a_job_that_names_no_scopes_needs_every_scope() -> None:
    # Made by the release before `read_scopes` existed (a rolling deploy): nothing says what
    # its result holds, so only a credential holding every scope reads it.
    assert result_scopes(Job(read_scopes=None)) == ALL_SCOPES
    assert result_scopes(Job(read_scopes=["users:read"])) == {"users:read"}
