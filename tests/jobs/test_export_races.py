"""Exports asked for at once, on a database whose commits are real: one job answers them all."""

import asyncio
from pathlib import Path
from typing import Any

import pytest
from asgi_lifespan import LifespanManager

from app.items import service as items_service
from app.main import create_app
from tests.harness import client_for, make_settings
from tests.identity import signed_up

pytestmark = pytest.mark.anyio

EXPORT = "/api/v1/users/me/export"


async def test_exports_asked_for_at_once_share_one_job(
    live_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each request read "no export is active" before any of them wrote one: each made its own
    job, and each finished job kept its file (the disk a user fills was no longer bounded)."""
    running = asyncio.Event()
    listing = items_service.list_items

    async def held(**kwargs: Any) -> Any:  # the export runs until the burst is answered
        await running.wait()
        return await listing(**kwargs)

    monkeypatch.setattr(items_service, "list_items", held)  # as the export calls it
    results = tmp_path / "results"
    settings = make_settings(
        DATABASE_URL=live_database_url, JOBS_RESULTS_DIR=str(results), JOBS_EAGER=False
    )
    app = create_app(settings)
    async with LifespanManager(app), client_for(app) as client:
        alice = await signed_up(client, "alice@example.com")
        answers = await asyncio.gather(*(client.post(EXPORT, headers=alice) for _ in range(8)))
        assert [answer.status_code for answer in answers] == [202] * 8
        ids = {answer.json()["id"] for answer in answers}
        assert len(ids) == 1, f"{len(ids)} jobs for one export"
        running.set()
        (location,) = {answer.headers["location"] for answer in answers}
        for _ in range(300):
            job = (await client.get(location, headers=alice)).json()
            if job["status"] == "succeeded":
                break
            await asyncio.sleep(0.05)
    assert job["status"] == "succeeded", job
    assert [path.stem for path in results.iterdir()] == list(ids)
