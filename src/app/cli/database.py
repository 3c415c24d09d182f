"""`app migrate` and `app makemigration`: Alembic, on the database of DATABASE_URL."""

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from app.cli import common
from app.db.session import safe_url

ConfigOption = Annotated[
    Path, typer.Option("--config", help="Alembic's configuration file.", show_default=True)
]


def alembic_config(path: Path) -> Config:
    """Alembic's configuration from `path`; its messages go to stderr, SQL to stdout."""
    if not path.is_file():
        common.fail(f"{path} not found: run from the project's root or pass --config")
    config = Config(str(path), stdout=sys.stderr)
    config.output_buffer = sys.stdout  # what `--sql` prints
    return config


def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    sql: Annotated[
        bool, typer.Option("--sql", help="Print the SQL instead of running it.")
    ] = False,
    config: ConfigOption = Path("alembic.ini"),
) -> None:
    """Apply the migrations up to REVISION (every one by default) to DATABASE_URL."""
    settings = common.settings()
    if sql and make_url(settings.database.url).get_backend_name() == "sqlite":
        # SQLite's batch migrations copy tables they must first read from a live database.
        common.fail("--sql needs a PostgreSQL DATABASE_URL (SQLite migrations read live tables)")
    command.upgrade(alembic_config(config), revision, sql=sql)
    if not sql:
        common.stderr.print(f"{safe_url(settings.database.url)} is at {revision}")


def makemigration(
    message: Annotated[str, typer.Argument(help="What changed, e.g. 'add invoices'.")],
    empty: Annotated[bool, typer.Option("--empty", help="Do not compare the models.")] = False,
    config: ConfigOption = Path("alembic.ini"),
) -> None:
    """Write a new migration from the difference between the models and the database."""
    if not message.strip():
        common.fail("MESSAGE must say what changed", 2)
    common.settings()
    alembic = alembic_config(config)
    with contextlib.redirect_stdout(sys.stderr):  # Alembic's progress lines; stdout: the path
        script = command.revision(alembic, message=message, autogenerate=not empty)
    scripts = script if isinstance(script, list) else [script]
    for written in scripts:
        if written is not None:
            common.stdout.print(written.path)


def register(cli: typer.Typer) -> None:
    """Add `migrate` and `makemigration` to the CLI."""
    common.register(
        cli,
        migrate,
        name="migrate",
        examples=["app migrate", "app migrate --sql > upgrade.sql", "app migrate <revision>"],
    )
    common.register(
        cli,
        makemigration,
        name="makemigration",
        examples=['app makemigration "add invoices"', 'app makemigration --empty "backfill"'],
    )
