"""The bare FastAPI + async SQLAlchemy ORM baseline: the real app's queries, nothing around them.

What a minimal template does (and the in-repo stand-in for one): a session per request that
commits at the end, ORM reads through `response_model`s, no middleware, no authentication, no
rate limit, no cache. The caller is the user `BENCH_USER_ID` (read by primary key, as a
template's token dependency does). Same tables, models and response schemas as the real app.

    DATABASE_URL=... BENCH_USER_ID=... uvicorn bare_orm_app:app   (bench/run.py starts it)
"""

import os
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import joinedload

import app.models as _mappers  # noqa: F401 - every table's mapper, as the real app loads them
from app.items import service as items_service
from app.items.models import Item
from app.items.schemas import ItemCreate, ItemRead
from app.users.models import User
from app.users.schemas import UserRead

engine = create_async_engine(os.environ["DATABASE_URL"])
sessions = async_sessionmaker(engine, expire_on_commit=False)
USER_ID = uuid.UUID(os.environ["BENCH_USER_ID"])
# Creates go to another user, so the list's user keeps the same items all along.
WRITER_ID = uuid.UUID(os.environ.get("BENCH_WRITER_ID", str(USER_ID)))
app = FastAPI()


async def get_session() -> AsyncIterator[AsyncSession]:
    """One session per request, committed at the end."""
    async with sessions() as session:
        yield session
        await session.commit()


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def current_user(session: SessionDep) -> User:
    """The caller: a primary-key read."""
    user = await session.get(User, USER_ID)
    if user is None:
        raise HTTPException(401)
    return user


@app.get("/api/v1/users/me", response_model=UserRead)
async def read_me(user: Annotated[User, Depends(current_user)]) -> User:
    """The caller's account."""
    return user


@app.get("/api/v1/items/{item_id}", response_model=ItemRead)
async def read_item(item_id: uuid.UUID, session: SessionDep) -> Item:
    """One item with its tags: the app's own query."""
    item = await items_service.get(session=session, item_id=item_id)
    if item is None:
        raise HTTPException(404)
    return item


@app.get("/api/v1/items", response_model=list[ItemRead])
async def list_items(session: SessionDep, limit: int = 50) -> list[Item]:
    """The caller's newest items with their tags, joined as the app's list loads them."""
    rows = await session.scalars(
        select(Item)
        .options(joinedload(Item.tag_rows))
        .where(Item.owner_id == USER_ID, Item.deleted_at.is_(None))
        .order_by(Item.created_at.desc(), Item.id.desc())
        .limit(limit)
    )
    return list(rows.unique())


@app.post("/api/v1/items", response_model=ItemRead, status_code=201)
async def create_item(body: ItemCreate, session: SessionDep) -> Item:
    """Store a new item of the caller: the app's own insert, without its checks around it."""
    return await items_service.create(session=session, owner_id=WRITER_ID, data=body)
