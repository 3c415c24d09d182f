"""`app seed`: demo accounts with items, created through the services; safe to run again."""

from decimal import Decimal
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from sqlalchemy.ext.asyncio import AsyncSession

from app.cli import common
from app.core.config import Settings
from app.core.security import PASSWORD_MIN_LENGTH, PasswordHasher
from app.items import service as items_service
from app.items.models import ItemStatus
from app.items.schemas import ItemCreate
from app.users import service as users_service

DEMO_PASSWORD = "demo-password"  # noqa: S105 - documented; `seed` refuses production  # nosec B105
_STATUSES = tuple(ItemStatus)
_CURRENCIES = ("EUR", "USD", "GBP")


def demo_email(number: int) -> str:
    """The address of demo account `number` (1-based)."""
    return f"demo{number}@example.com"


def demo_item(number: int) -> ItemCreate:
    """Demo item `number` of an account: varied status, price, currency and tags."""
    # Validated as the API validates a request body: the price as its decimal string.
    return ItemCreate.model_validate(
        {
            "title": f"Demo item {number}",
            "description": "Created by `app seed`.",
            "status": _STATUSES[number % len(_STATUSES)],
            "price": str(Decimal(number * 250 + 99) / 100),
            "currency": _CURRENCIES[number % len(_CURRENCIES)],
            "tags": ["demo", f"group-{number % 3}"],
        }
    )


async def _seed_user(
    session: AsyncSession, hasher: PasswordHasher, *, email: str, password: str, items: int
) -> bool:
    """Create one account and its items in one transaction; False when it exists already."""
    if await users_service.get_by_email(session=session, email=email) is not None:
        return False
    user = await users_service.create(
        session=session, hasher=hasher, email=email, password=password, full_name="Demo User"
    )
    for number in range(1, items + 1):
        await items_service.create(session=session, owner_id=user.id, data=demo_item(number))
    await session.commit()
    return True


async def seed_accounts(
    settings: Settings, *, users: int, items: int, password: str, progress: Progress
) -> int:
    """Create the missing demo accounts (each with `items` items); return how many were new."""
    hasher = PasswordHasher.from_settings(settings.auth)
    task = progress.add_task("demo accounts", total=users)
    created = 0
    async with common.database(settings) as session_factory:
        for number in range(1, users + 1):
            async with session_factory() as session:
                email = demo_email(number)
                created += await _seed_user(
                    session, hasher, email=email, password=password, items=items
                )
            progress.advance(task)
    return created


def seed(
    users: Annotated[int, typer.Option(min=1, max=1000, help="Demo accounts.")] = 3,
    items: Annotated[int, typer.Option(min=0, max=1000, help="Items per new account.")] = 10,
    password: Annotated[
        str, typer.Option(envvar="SEED_PASSWORD", help="Password of every demo account.")
    ] = DEMO_PASSWORD,
) -> None:
    """Create demo accounts demo1@example.com, demo2@... with items; existing ones are kept.

    Refused with ENVIRONMENT=production: the demo password is public.
    """
    settings = common.settings()
    if settings.app.environment == "production":
        common.fail("seed refuses ENVIRONMENT=production: demo accounts have a public password")
    if len(password) < PASSWORD_MIN_LENGTH:
        common.fail(f"the demo password needs {PASSWORD_MIN_LENGTH} or more characters", 2)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=common.stderr) as progress:
        created = common.run(
            seed_accounts(settings, users=users, items=items, password=password, progress=progress)
        )
    kept = users - created
    common.stderr.print(
        f"{created} demo account(s) created with {created * items} item(s), {kept} kept; "
        f"log in as {demo_email(1)} with the demo password"
    )


def register(cli: typer.Typer) -> None:
    """Add `seed` to the CLI."""
    common.register(
        cli,
        seed,
        name="seed",
        examples=["app seed", "app seed --users 20 --items 50", "SEED_PASSWORD=... app seed"],
    )
