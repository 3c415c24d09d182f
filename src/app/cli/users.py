"""`app create-superuser`: an administrator account, created through the users service."""

from typing import Annotated

import typer
from pydantic import TypeAdapter, ValidationError

from app.cli import common
from app.core.config import Settings
from app.core.security import PASSWORD_MAX_LENGTH, PasswordHasher
from app.core.settings_safety import WEAK_SUPERUSER_PASSWORD, weak_superuser_password
from app.users import service as users_service
from app.users.exceptions import EmailTaken
from app.users.schemas import Email

_EMAIL = TypeAdapter(Email)


def checked_email(text: str) -> str:
    """The normalised email, or a one-line error."""
    try:
        return _EMAIL.validate_python(text)
    except ValidationError:
        common.fail(f"not a valid email address: {text!r}", 2)


def checked_password(text: str) -> str:
    """The password when the superuser policy accepts it, or a one-line error."""
    if len(text) > PASSWORD_MAX_LENGTH:
        common.fail(f"the password is longer than {PASSWORD_MAX_LENGTH} characters", 2)
    if weak_superuser_password(text):
        common.fail(f"the password is {WEAK_SUPERUSER_PASSWORD}", 2)
    return text


async def create(settings: Settings, *, email: str, password: str, full_name: str | None) -> bool:
    """Create the superuser; False when it exists already. Refuses to promote an account."""
    hasher = PasswordHasher.from_settings(settings.auth)
    async with common.database(settings) as session_factory, session_factory() as session:
        existing = await users_service.get_by_email(session=session, email=email)
        if existing is not None and existing.is_superuser:
            return False
        if existing is not None:
            # Anyone may have registered this address: promoting it must be a deliberate act.
            common.fail(
                f"{email} is an existing account that is not a superuser; a superuser can "
                f"promote it with PATCH /api/v1/users/{existing.id}"
            )
        try:
            await users_service.create(
                session=session,
                hasher=hasher,
                email=email,
                password=password,
                full_name=full_name,
                is_superuser=True,
            )
        except EmailTaken:
            common.fail(f"{email} was registered meanwhile; run the command again")
        await session.commit()
    return True


def create_superuser(
    email: Annotated[
        str | None,
        typer.Option(envvar="FIRST_SUPERUSER_EMAIL", help="The account's email [prompted]."),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            envvar="FIRST_SUPERUSER_PASSWORD",
            help="The password [prompted, without echo]; prefer the prompt or the variable.",
            show_default=False,
        ),
    ] = None,
    full_name: Annotated[str | None, typer.Option(help="The account's full name.")] = None,
) -> None:
    """Create a superuser account (nothing changes when it exists already).

    The password must pass the superuser policy (12+ varied characters), in every
    environment. An existing ordinary account with that email is never promoted.
    """
    settings = common.settings()
    first = settings.first_superuser
    email = email or first.email or typer.prompt("Email")
    email = checked_email(email)
    if password is None and first.password is not None:
        password = first.password.get_secret_value()
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    password = checked_password(password)
    if common.run(create(settings, email=email, password=password, full_name=full_name)):
        common.stderr.print(f"superuser {email} created")
    else:
        common.stderr.print(f"superuser {email} exists already; nothing changed")


def register(cli: typer.Typer) -> None:
    """Add `create-superuser` to the CLI."""
    common.register(
        cli,
        create_superuser,
        name="create-superuser",
        examples=[
            "app create-superuser",
            "app create-superuser --email admin@example.com",
            "FIRST_SUPERUSER_PASSWORD=... app create-superuser --email admin@example.com",
        ],
    )
