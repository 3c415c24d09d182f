"""The app in embedded mode with jobs run inline, writing result files to a private directory."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient

from app.core.config import Settings
from tests.harness import started


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    return tmp_path / "results"


@pytest.fixture
async def jobs_app(
    settings: Settings, results_dir: Path
) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    async with started(settings, JOBS_RESULTS_DIR=str(results_dir)) as (app, client):
        yield app, client
