"""What every command shares: registration with examples, settings, the database, errors."""

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings, load_settings
from app.core.errors import is_database_unavailable
from app.db.session import create_engine, create_session_factory, safe_url

T = TypeVar("T")

# Results go to stdout (so they can be piped); progress, notes and errors go to stderr.
stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


class CliError(Exception):
    """A failure the user can act on: printed as one line, exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def fail(message: str, exit_code: int = 1) -> NoReturn:
    """Stop the command with a one-line error."""
    raise CliError(message, exit_code)


def register(
    cli: typer.Typer, function: Callable[..., Any], *, name: str, examples: Sequence[str]
) -> None:
    """Add `function` to `cli` as the command `name`, its docstring as help, then examples.

    A command module defines its function (typer options as annotated parameters) and one
    `register(cli)` that calls this; `app.cli.COMMANDS` lists the modules.
    """
    epilog = "**Examples**\n\n" + "\n\n".join(f"`$ {line}`" for line in examples)
    cli.command(name, epilog=epilog)(function)


def settings(**overrides: Any) -> Settings:
    """The effective settings: environment, then `.env`, then `overrides` (flat names)."""
    return load_settings(**overrides)


def run(work: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine to completion on a fresh event loop."""
    return asyncio.run(work)


@asynccontextmanager
async def database(current: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A session factory on `DATABASE_URL`; an outage becomes a one-line error."""
    engine = create_engine(current.database, application_name=f"{current.app.slug}-cli")
    try:
        yield create_session_factory(engine)
    except Exception as exc:
        if is_database_unavailable(exc):
            reason = getattr(exc, "orig", None) or exc  # the driver's words, not SQLAlchemy's
            fail(f"the database at {safe_url(current.database.url)} is unavailable ({reason})")
        raise
    finally:
        await engine.dispose()
