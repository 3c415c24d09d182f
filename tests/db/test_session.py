import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.errors import ConflictError
from app.db.session import create_engine, safe_url
from app.deps import SessionDep, resources_of
from app.main import create_app
from tests.db.models import Part, ScratchBase, Widget
from tests.harness import make_settings, running
from tests.services import postgres_url

pytestmark = pytest.mark.anyio


def add_widget_routes(app: FastAPI) -> None:
    @app.post("/widgets/{name}", status_code=201)
    async def create_widget(name: str, session: SessionDep) -> dict[str, str]:
        widget = Widget(name=name)
        session.add(widget)
        await session.flush()
        return {"id": str(widget.id)}

    @app.post("/widgets/{name}/then-fail")
    async def create_then_fail(name: str, session: SessionDep) -> None:
        session.add(Widget(name=name))
        await session.flush()
        raise ConflictError("Changed my mind.")

    @app.get("/widgets/count")
    async def count_widgets(session: SessionDep) -> dict[str, int]:
        total = await session.scalar(select(func.count()).select_from(Widget))
        return {"count": total or 0}


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    add_widget_routes(app)
    async with running(app) as started:
        connection = resources_of(started).session_factory.kw["bind"]
        await connection.run_sync(ScratchBase.metadata.create_all)
        yield started


@pytest.fixture
def sessions(app: FastAPI) -> async_sessionmaker[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = resources_of(app).session_factory
    return factory


async def test_successful_request_commits(client: AsyncClient) -> None:
    assert (await client.post("/widgets/a")).status_code == 201
    assert (await client.get("/widgets/count")).json() == {"count": 1}


async def test_failed_request_rolls_back(client: AsyncClient) -> None:
    response = await client.post("/widgets/b/then-fail")
    assert response.status_code == 409
    assert (await client.get("/widgets/count")).json() == {"count": 0}


async def test_tests_are_isolated_from_each_other(client: AsyncClient) -> None:
    # test_successful_request_commits created a widget; each test starts empty.
    assert (await client.get("/widgets/count")).json() == {"count": 0}


async def test_mixins_fill_ids_and_utc_timestamps(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        widget = Widget(name="stamped")
        session.add(widget)
        await session.commit()
        widget_id = widget.id
    async with sessions() as session:
        loaded = await session.get_one(Widget, widget_id)
        assert isinstance(loaded.id, uuid.UUID)
        assert loaded.created_at.tzinfo is not None
        assert loaded.created_at.utcoffset() == timedelta(0)
        assert abs(datetime.now(UTC) - loaded.created_at) < timedelta(minutes=1)
        first_update = loaded.updated_at
        loaded.name = "renamed"
        await session.commit()
        assert loaded.updated_at >= first_update


async def test_timestamps_round_trip_as_the_same_instant(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    plus_two = timezone(timedelta(hours=2))
    instant = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=plus_two)
    async with sessions() as session:
        widget = Widget(name="instant", created_at=instant)
        session.add(widget)
        await session.commit()
        widget_id = widget.id
    async with sessions() as session:
        loaded = await session.get_one(Widget, widget_id)
        assert loaded.created_at == instant
        assert loaded.created_at.tzinfo == UTC


async def test_naive_datetimes_are_refused(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        session.add(Widget(name="naive", created_at=datetime(2026, 1, 1)))  # noqa: DTZ001
        with pytest.raises(StatementError, match="naive datetime"):
            await session.flush()


async def test_soft_delete_and_restore(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        widget = Widget(name="soft")
        session.add(widget)
        widget.soft_delete()
        await session.flush()
        assert widget.is_deleted
        assert widget.deleted_at is not None
        widget.restore()
        await session.flush()
        assert not widget.is_deleted


async def test_foreign_keys_are_enforced(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        session.add(Part(widget_id=uuid.uuid4()))
        with pytest.raises(IntegrityError):
            await session.flush()


async def test_unique_constraints_follow_the_naming_convention(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    constraint_names = {
        c.name for c in ScratchBase.metadata.tables[Widget.__tablename__].constraints
    }
    assert {"pk_scratch_widget", "uq_scratch_widget_name"} <= constraint_names
    async with sessions() as session:
        session.add_all([Widget(name="twin"), Widget(name="twin")])
        with pytest.raises(IntegrityError):
            await session.flush()


async def test_sqlite_engine_has_foreign_keys_and_wal(tmp_path: object) -> None:
    engine = create_engine(
        make_settings(DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/wal.db").database,
        application_name="tests",
    )
    try:
        async with engine.connect() as connection:
            assert (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
            assert (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        await engine.dispose()


async def test_in_memory_sqlite_shares_one_connection() -> None:
    engine = create_engine(
        make_settings(DATABASE_URL="sqlite+aiosqlite://").database, application_name="tests"
    )
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        async with engine.connect() as connection:
            assert (await connection.exec_driver_sql("SELECT count(*) FROM t")).scalar() == 0
    finally:
        await engine.dispose()


def test_postgres_pool_and_timeouts_come_from_settings() -> None:
    settings = make_settings(
        DATABASE_URL="postgresql+asyncpg://app:pw@db.invalid/app",
        DATABASE_POOL_SIZE=7,
        DATABASE_MAX_OVERFLOW=3,
        DATABASE_STATEMENT_TIMEOUT_MS=1234,
        DATABASE_POOL_TIMEOUT=4,
        DATABASE_POOL_RECYCLE=600,
    )
    engine = create_engine(settings.database, application_name="tests")
    pool = engine.sync_engine.pool
    assert pool.size() == 7  # type: ignore[attr-defined]
    assert pool._max_overflow == 3  # type: ignore[attr-defined]
    assert pool.timeout() == 4  # type: ignore[attr-defined]
    assert pool._recycle == 600
    assert pool._pre_ping is False  # pinged only after an idle period (test_round_trips)
    assert safe_url(settings.database.url) == "postgresql+asyncpg://app:***@db.invalid/app"


@pytest.fixture
def postgres_url_or_skip() -> str:
    return postgres_url()


async def test_postgres_sessions_get_the_statement_timeout(postgres_url_or_skip: str) -> None:
    url = postgres_url_or_skip
    settings = make_settings(DATABASE_URL=url, DATABASE_STATEMENT_TIMEOUT_MS=1500)
    engine = create_engine(settings.database, application_name=settings.app.name)
    try:
        async with engine.connect() as connection:
            timeout = (await connection.exec_driver_sql("SHOW statement_timeout")).scalar()
            name = (await connection.exec_driver_sql("SHOW application_name")).scalar()
    finally:
        await engine.dispose()
    assert timeout == "1500ms"
    assert name == "Production FastAPI Backend"
