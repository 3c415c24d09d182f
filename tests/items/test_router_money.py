"""Item prices over the real app and databases: exact decimals, refused prices, ISO 4217."""

import uuid
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient

from app.items.models import Item
from tests.harness import assert_problem as problem
from tests.harness import factory, pointers
from tests.identity import signed_up
from tests.items.helpers import ALICE, ITEMS, create_item, item_url, list_page, new_item, read_item

pytestmark = pytest.mark.anyio


# --- money -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "price",
    ["19.90", "0", "0.00", "12345678901234.5678", "0.0001", "100", "7.5000", "99999999999999"],
)
async def test_money_round_trips_exactly(app: FastAPI, client: AsyncClient, price: str) -> None:
    headers = await signed_up(client, ALICE)
    created = await create_item(client, headers, price=price, currency="USD")
    assert created["price"] == price
    assert (await read_item(client, headers, created["id"]))["price"] == price  # from the database
    assert (await list_page(client, headers))["items"][0]["price"] == price
    async with factory(app)() as session:
        stored = await session.get(Item, uuid.UUID(created["id"]))
        assert stored is not None
        assert stored.price == Decimal(price)
        assert str(stored.price) == price or f"{stored.price:f}" == price


async def test_a_patched_price_keeps_its_decimals(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers, price="19.90")
    response = await client.patch(item_url(item["id"]), json={"price": "5.5"}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["price"] == "5.5"
    assert (await read_item(client, headers, item["id"]))["price"] == "5.5"
    response = await client.patch(item_url(item["id"]), json={"price": "3.1400"}, headers=headers)
    assert (await read_item(client, headers, item["id"]))["price"] == "3.1400"


@pytest.mark.parametrize(
    "price",
    [
        "19.90001",  # five decimals
        "1.50000",  # five decimals, even if the last ones are zeros
        "0.000000",
        "007.50",  # a leading zero would not come back as sent ("7.50")
        "00",
        "01.5",
        "-1",
        "-0.01",
        19.9,  # a JSON float
        1e2,
        5,  # a JSON integer: the schema says string
        "+5",  # what Decimal reads, and the schema's pattern does not allow
        "1e2",
        "\u0665",  # a non-ASCII digit (Arabic-Indic five)
        "abc",
        "",
        "NaN",
        "Infinity",
        "123456789012345678.901",  # 21 digits
        "999999999999999",  # 15 integer digits: past the largest storable price
        None,
    ],
)
async def test_invalid_prices_are_refused(
    shared_client: AsyncClient, shared_caller: dict[str, str], price: Any
) -> None:
    # Refused by the body's validation, before the database: one app serves every case.
    response = await shared_client.post(ITEMS, json=new_item(price=price), headers=shared_caller)
    assert "#/price" in pointers(problem(response, 422, "validation_error"))


async def test_a_price_with_trailing_zeros_beyond_4_decimals_is_refused_in_a_patch(
    client: AsyncClient,
) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers)
    response = await client.patch(item_url(item["id"]), json={"price": "2.00000"}, headers=headers)
    assert "#/price" in pointers(problem(response, 422, "validation_error"))
    assert await read_item(client, headers, item["id"]) == item


async def test_negative_zero_is_shown_as_zero(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    response = await client.post(ITEMS, json=new_item(price="-0"), headers=headers)
    if response.status_code == 422:
        assert "#/price" in pointers(problem(response, 422, "validation_error"))
        return
    assert response.status_code == 201, response.text
    assert response.json()["price"] == "0"
    assert (await read_item(client, headers, response.json()["id"]))["price"] == "0"


async def test_a_float_price_is_refused_in_a_patch_too(client: AsyncClient) -> None:
    headers = await signed_up(client, ALICE)
    item = await create_item(client, headers)
    response = await client.patch(item_url(item["id"]), json={"price": 19.9}, headers=headers)
    assert "#/price" in pointers(problem(response, 422, "validation_error"))
    assert (await read_item(client, headers, item["id"]))["price"] == "19.90"


@pytest.mark.parametrize("currency", ["ABC", "usd", "Eur", "US", "EURO", "", "XXX"])
async def test_unknown_currencies_are_refused(client: AsyncClient, currency: str) -> None:
    headers = await signed_up(client, ALICE)
    response = await client.post(ITEMS, json=new_item(currency=currency), headers=headers)
    assert "#/currency" in pointers(problem(response, 422, "validation_error"))


@pytest.mark.parametrize("currency", ["USD", "EUR", "JPY", "CHF", "XOF"])
async def test_iso_4217_currencies_are_accepted(client: AsyncClient, currency: str) -> None:
    headers = await signed_up(client, ALICE)
    assert (await create_item(client, headers, currency=currency))["currency"] == currency


async def test_the_price_is_a_string_in_the_schema(client: AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()["components"]["schemas"]
    assert schema["ItemRead"]["properties"]["price"]["type"] == "string"
    assert schema["ItemCreate"]["properties"]["price"]["type"] == "string"
