"""`app openapi`: the OpenAPI document, with stable key order, to a file or stdout."""

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli import common
from app.core.config import Settings, build_settings
from app.main import create_app


def default_settings() -> Settings:
    """Settings from the defaults alone: the environment and `.env` are ignored."""
    defaults: dict[str, Any] = {
        str(field.validation_alias): field.default
        for group in Settings.groups().values()
        for field in group.model_fields.values()
    }
    return build_settings(env_file=None, **defaults)


def render(settings: Settings) -> str:
    """The app's OpenAPI document as JSON text: sorted keys, two-space indent, final newline."""
    document = create_app(settings).openapi()
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def openapi(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here [default: stdout].")
    ] = None,
    defaults: Annotated[
        bool,
        typer.Option(
            "--defaults",
            help="Use the default settings, ignoring the environment and .env "
            "(how the committed openapi.json is made).",
        ),
    ] = False,
) -> None:
    """Write the OpenAPI document of the API as the settings shape it (AUTH_PROVIDER...)."""
    text = render(default_settings() if defaults else common.settings())
    if output is None:
        common.stdout.out(text, end="", highlight=False)
        return
    output.write_text(text, encoding="utf-8")
    common.stderr.print(f"wrote {output}")


def register(cli: typer.Typer) -> None:
    """Add `openapi` to the CLI."""
    common.register(
        cli,
        openapi,
        name="openapi",
        examples=["app openapi > openapi.json", "app openapi --defaults --output openapi.json"],
    )
