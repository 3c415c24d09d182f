import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    DateTime,
    Uuid,
    column,
    delete,
    insert,
    inspect,
    select,
    table,
)
from sqlalchemy.ext.asyncio import create_async_engine

from app.jobs.models import Job
from tests.migrations import ALEMBIC_INI, check, migrate

pytestmark = pytest.mark.anyio

ROOT = ALEMBIC_INI.parent
VERSIONS = ROOT / "migrations" / "versions"


async def table_names(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


async def current_revision(url: str) -> str | None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            if "alembic_version" not in await connection.run_sync(
                lambda sync: inspect(sync).get_table_names()
            ):
                return None
            return (
                await connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            ).scalar()
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_upgrade_then_no_drift(database_url: str) -> None:
    # The session fixture migrated to head; walk all the way down and back up.
    tables_at_head = await table_names(database_url)
    await migrate(database_url, "base", down=True)
    assert await current_revision(database_url) is None
    assert await table_names(database_url) <= {"alembic_version"}
    await migrate(database_url, "head")
    assert await table_names(database_url) == tables_at_head
    assert await current_revision(database_url) is not None
    await check(database_url)


def test_migration_files_are_date_slug_named() -> None:
    names = sorted(path.name for path in VERSIONS.glob("*.py"))
    assert names, "there is at least the baseline migration"
    for name in names:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}_[a-z0-9_]+\.py", name), name


async def test_alembic_cli_migrates_the_configured_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    result = subprocess.run(  # noqa: S603, ASYNC221 - fixed arguments; the test may block its loop
        [sys.executable, "-m", "alembic", "-c", str(ALEMBIC_INI), "upgrade", "head"],
        cwd=tmp_path,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert await current_revision(url) is not None


async def test_exports_made_before_read_scopes_need_the_exports_scopes(database_url: str) -> None:
    await migrate(database_url, "0007_login_known_clients", down=True)
    engine = create_async_engine(database_url)
    # The table as revision 0007 has it (the model's defaults would write read_scopes).
    jobs = table(
        "jobs",
        *(column(name) for name in ("task", "status", "attempts", "max_attempts", "args")),
        column("id", Uuid()),
        column("has_file", Boolean()),
        column("created_at", DateTime(timezone=True)),
        column("run_after", DateTime(timezone=True)),
    )
    ids = {"export_user_data": uuid.uuid4(), "send_email": uuid.uuid4()}
    now = datetime.now(UTC)

    def old_release_job(task: str, job_id: uuid.UUID) -> Any:
        return insert(jobs).values(
            id=job_id, task=task, status="succeeded", attempts=1, max_attempts=1, args="{}",
            has_file=task == "export_user_data", created_at=now, run_after=now,
        )  # fmt: skip

    try:
        async with engine.begin() as connection:
            for task, job_id in ids.items():
                await connection.execute(old_release_job(task, job_id))
        await migrate(database_url, "head")
        # During a rolling deploy the previous release still inserts jobs without the column.
        ids["during_rollout"] = uuid.uuid4()
        async with engine.begin() as connection:
            await connection.execute(old_release_job("export_user_data", ids["during_rollout"]))
        async with engine.begin() as connection:
            mine = Job.id.in_(ids.values())
            rows = await connection.execute(select(Job.id, Job.read_scopes).where(mine))
            assert dict(rows.all()) == {
                ids["export_user_data"]: ["items:read", "users:read"],
                ids["send_email"]: [],
                ids["during_rollout"]: None,
            }
            await connection.execute(delete(Job).where(mine))
    finally:
        await engine.dispose()
