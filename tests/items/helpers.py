"""Shared by the item tests: the API's paths, item bodies, reading results, fast inserts."""

import uuid
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from fastapi import FastAPI
from httpx2 import AsyncClient

from app.db.base import utcnow
from app.items.models import Item, ItemStatus, ItemTag
from tests.harness import factory

ITEMS = "/api/v1/items"
KEYS = "/api/v1/api-keys"
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
ALICE = "alice@example.com"
BOB = "bob@example.com"
ADMIN = "admin@example.com"


def item_url(item_id: str | uuid.UUID) -> str:
    return f"{ITEMS}/{item_id}"


def new_item(**overrides: Any) -> dict[str, Any]:
    """A valid creation body, changed by `overrides`."""
    return {"title": "Desk lamp", "price": "19.90", "currency": "EUR", **overrides}


async def create_item(
    client: AsyncClient, headers: dict[str, str], **overrides: Any
) -> dict[str, Any]:
    """Create an item through the API and return it."""
    response = await client.post(ITEMS, json=new_item(**overrides), headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def read_item(
    client: AsyncClient, headers: dict[str, str], item_id: str | uuid.UUID
) -> dict[str, Any]:
    response = await client.get(item_url(item_id), headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == f'"{response.json()["version"]}"'
    body: dict[str, Any] = response.json()
    return body


async def list_page(client: AsyncClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = await client.get(ITEMS, params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def parse_time(value: str) -> datetime:
    assert value.endswith("Z"), value  # RFC 3339 in UTC
    return datetime.fromisoformat(value)


def item_etag(item: dict[str, Any]) -> str:
    return f'"{item["version"]}"'


async def user_id(client: AsyncClient, headers: dict[str, str]) -> str:
    response = await client.get("/api/v1/users/me", headers=headers)
    assert response.status_code == 200
    value: str = response.json()["id"]
    return value


def newest_first(items: list[Item]) -> list[str]:
    """The ids in the list's default order: created_at, then id, both descending."""
    return [
        str(item.id) for item in sorted(items, key=lambda i: (i.created_at, i.id), reverse=True)
    ]


def ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["items"]]


def parameters(body: dict[str, Any]) -> set[str]:
    return {error["parameter"] for error in body.get("errors", []) if "parameter" in error}


async def insert_items(
    app: FastAPI,
    owner_id: str | uuid.UUID,
    created_at: Iterable[datetime] | None = None,
    *,
    count: int | None = None,
    tags: list[str] | None = None,
) -> list[Item]:
    """Insert items straight through the session (fast), one per `created_at` or `count`."""
    times = list(created_at) if created_at is not None else [utcnow() for _ in range(count or 0)]
    items = [
        Item(
            owner_id=uuid.UUID(str(owner_id)),
            title=f"bulk {index:04d}",
            description="",
            status=ItemStatus.DRAFT,
            price=Decimal("1.50"),
            price_scale=2,
            currency="EUR",
            created_at=at,
            updated_at=at,
            tag_rows=[
                ItemTag(tag=tag, position=position) for position, tag in enumerate(tags or [])
            ],
        )
        for index, at in enumerate(times)
    ]
    async with factory(app)() as session:
        session.add_all(items)
        await session.commit()
    return items
