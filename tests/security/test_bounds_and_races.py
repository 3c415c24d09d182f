"""Attack: overflow bounds or race a deletion. Every answer is a 4xx, never a 500."""

from typing import Any

import pytest
from fastapi import FastAPI
from httpx2 import ASGITransport, AsyncClient
from sqlalchemy import delete

from app.items import service as items_service
from app.main import create_app
from app.users.models import User
from tests.harness import assert_problem, make_settings, running
from tests.security.helpers import ITEMS, KEYS, account, make_superuser

pytestmark = pytest.mark.anyio

INT64_PLUS = 2**63


@pytest.mark.parametrize("path", [ITEMS, KEYS, "/api/v1/users"])
@pytest.mark.parametrize("parameter", ["offset", "limit"])
async def test_integer_parameters_have_a_maximum(
    app: FastAPI, client: AsyncClient, path: str, parameter: str
) -> None:
    headers = await account(client, "bounds@example.com")
    await make_superuser(app, "bounds@example.com")
    response = await client.get(path, params={parameter: INT64_PLUS}, headers=headers)
    assert_problem(response, 422, "validation_error")


def test_every_integer_query_parameter_is_bounded_in_the_schema() -> None:
    spec = create_app(make_settings()).openapi()
    open_ended = [
        f"{path} {parameter['name']}"
        for path, operations in spec["paths"].items()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["schema"].get("type") == "integer" and "maximum" not in parameter["schema"]
    ]
    assert open_ended == []


async def deleting_the_owner_first(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the account disappear between authentication and the write (a concurrent delete)."""
    create = items_service.create

    async def racing(*, session: Any, owner_id: Any, data: Any) -> Any:
        await session.execute(delete(User).where(User.id == owner_id))
        return await create(session=session, owner_id=owner_id, data=data)

    monkeypatch.setattr(items_service, "create", racing)


async def test_an_item_created_for_an_account_deleted_meanwhile_is_a_conflict(
    app: FastAPI, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = await account(client, "race@example.com")
    await deleting_the_owner_first(app, monkeypatch)
    response = await client.post(
        ITEMS, json={"title": "x", "price": "1", "currency": "EUR"}, headers=headers
    )
    assert_problem(response, 409, "conflict")


@pytest.mark.parametrize(
    "host",
    [
        "api.example.com:abc",
        "api.example.com:99999",
        "api.example.com:",
        "[::1]x",
        "api.example.com:-1",
    ],
)
async def test_the_host_header_port_must_be_a_port(host: str, settings: Any) -> None:
    app = create_app(
        make_settings(DATABASE_URL=settings.database.url, ALLOWED_HOSTS="api.example.com,::1")
    )
    async with running(app):
        transport = ASGITransport(app=app)
        async with AsyncClient(transport=transport, base_url="http://api.example.com") as client:
            refused = await client.get("/api/v1/meta", headers={"Host": host})
            allowed = await client.get("/api/v1/meta", headers={"Host": "api.example.com:8443"})
    assert_problem(refused, 400, "invalid_host")
    assert allowed.status_code == 200
