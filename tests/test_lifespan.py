"""Start-up with the database down: the app serves, readiness waits, the bootstrap runs later."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from asgi_lifespan import LifespanManager
from httpx2 import AsyncClient
from sqlalchemy import delete, select
from sqlalchemy.engine import make_url

from app.deps import resources_of
from app.main import create_app
from app.users.models import User
from tests.harness import client_for, free_port, log_lines, make_settings

pytestmark = pytest.mark.anyio

WAIT_SECONDS = 20


class Forwarder:
    """A TCP port that refuses connections until `open()`, then forwards them to a target."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.server: asyncio.Server | None = None

    async def open(self) -> None:
        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except OSError:
                pass
            finally:
                writer.close()

        async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
            await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

        self.server = await asyncio.start_server(forward, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def database_later(database_url: str) -> AsyncIterator[tuple[str, Forwarder]]:
    """The migrated PostgreSQL test database behind a port that opens when the test says."""
    url = make_url(database_url)
    forwarder = Forwarder(url.host or "127.0.0.1", url.port or 5432)
    yield url.set(host="127.0.0.1", port=forwarder.port).render_as_string(False), forwarder
    await forwarder.close()


async def wait_until_ready(client: AsyncClient) -> int:
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while True:
        status = (await client.get("/api/v1/health/ready")).status_code
        if status == 200 or asyncio.get_running_loop().time() > deadline:
            return status
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_worker_starts_without_its_database_and_bootstraps_when_it_answers(
    database_later: tuple[str, Forwarder],
) -> None:
    url, forwarder = database_later
    email = f"first-{uuid.uuid4().hex}@example.com"
    settings = make_settings(
        DATABASE_URL=url, FIRST_SUPERUSER_EMAIL=email, FIRST_SUPERUSER_PASSWORD="a-long-password"
    )
    app = create_app(settings)
    with log_lines() as logs:
        async with LifespanManager(app), client_for(app) as client:  # no exception: it serves
            down = await client.get("/api/v1/health/ready")
            work = await client.get("/api/v1/users/me", headers={"X-API-Key": "pfb_x"})
            await forwarder.open()
            ready = await wait_until_ready(client)
            async with resources_of(app).session_factory() as session:
                created = await session.scalar(select(User.is_superuser).where(User.email == email))
                await session.execute(delete(User).where(User.email == email))
                await session.commit()
    assert down.status_code == 503
    assert down.json()["status"] == "error"
    assert work.status_code == 503
    assert work.json()["code"] == "database_unavailable"
    assert ready == 200
    assert created is True
    assert logs.events("startup_waiting_for_database")
    assert logs.events("startup_completed")
