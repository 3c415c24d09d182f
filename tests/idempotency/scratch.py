"""A test-only table and idempotent routes that create its rows, fail, or wait on request."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import MetaData, String, delete, func, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.auth.deps import CurrentPrincipal
from app.core.errors import ConflictError
from app.db.base import NAMING_CONVENTION, Base, UUIDPrimaryKeyMixin
from app.deps import SessionDep, resources_of
from app.idempotency.deps import IdempotencyKeyDep, Idempotent, IdempotentRoute
from app.idempotency.models import IdempotencyKey
from app.main import create_app
from app.users.models import User
from tests.harness import make_settings

HOLD_TIMEOUT_SECONDS = 10
EMAIL_PREFIX = "idem-live-"

Failure = Literal["conflict", "server_error", "boom", "disconnect"]


class IdempotencyScratchBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = Base.type_annotation_map


class Thing(UUIDPrimaryKeyMixin, IdempotencyScratchBase):
    __tablename__ = "scratch_idempotent_things"

    owner_id: Mapped[uuid.UUID]
    group: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(100))


class ThingCreate(BaseModel):
    name: str


class ThingRead(BaseModel):
    id: uuid.UUID
    group: str
    name: str


@dataclass
class Control:
    """What the next request to the thing route does besides creating a thing."""

    hold: bool = False
    started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    fail_next: Failure | None = None

    def take_failure(self) -> Failure | None:
        failure, self.fail_next = self.fail_next, None
        return failure


def build_router(control: Control) -> APIRouter:
    """Routes that opt in to Idempotency-Key, on a router with the idempotent route class."""
    router = APIRouter(route_class=IdempotentRoute)

    @router.post(
        "/things/{group}", status_code=201, response_model=ThingRead, dependencies=[Idempotent]
    )
    async def create_thing(
        group: str,
        body: ThingCreate,
        principal: CurrentPrincipal,
        session: SessionDep,
        response: Response,
    ) -> ThingRead | Response:
        if control.hold:
            control.started.set()
            async with asyncio.timeout(HOLD_TIMEOUT_SECONDS):
                await control.release.wait()
        thing = Thing(owner_id=principal.user.id, group=group, name=body.name)
        session.add(thing)
        await session.flush()
        failure = control.take_failure()
        if failure == "conflict":
            raise ConflictError("Changed my mind.")
        if failure == "boom":
            raise RuntimeError("unexpected")
        if failure == "disconnect":  # the server ends this connection, as a restart would
            await session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        if failure == "server_error":
            return JSONResponse({"detail": "try later"}, status_code=503)
        response.headers["Location"] = f"/things/{group}/{thing.id}"
        return ThingRead(id=thing.id, group=thing.group, name=thing.name)

    @router.post("/keys", status_code=201)
    async def echo_key(key: IdempotencyKeyDep) -> dict[str, str | None]:
        return {"key": key}

    @router.get("/plain")
    async def plain() -> dict[str, str]:
        return {"route": "plain"}

    return router


def build_misconfigured_router() -> APIRouter:
    """An idempotent route on a router that lacks the idempotent route class."""
    router = APIRouter()

    @router.post("/misconfigured", status_code=201, dependencies=[Idempotent])
    async def misconfigured() -> dict[str, str]:
        return {"never": "reached"}

    return router


@asynccontextmanager
async def live_app(url: str, control: Control, **settings: Any) -> AsyncIterator[FastAPI]:
    """Run the app on `url` without the rolled-back harness; remove its rows afterwards."""
    app = create_app(make_settings(DATABASE_URL=url, **settings))
    app.include_router(build_router(control))
    async with LifespanManager(app):
        async with resources_of(app).engine.begin() as connection:
            await connection.run_sync(IdempotencyScratchBase.metadata.create_all)
        try:
            yield app
        finally:
            async with resources_of(app).engine.begin() as connection:
                await connection.run_sync(IdempotencyScratchBase.metadata.drop_all)
                # Keys and tokens go with their users (ON DELETE CASCADE).
                await connection.execute(delete(User).where(User.email.like(f"{EMAIL_PREFIX}%")))


async def counts(app: FastAPI) -> tuple[int, int]:
    """Return how many things and idempotency keys the database holds."""
    async with resources_of(app).session_factory() as session:
        things = await session.scalar(select(func.count()).select_from(Thing))
        keys = await session.scalar(select(func.count()).select_from(IdempotencyKey))
    return things or 0, keys or 0
