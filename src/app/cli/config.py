"""`app config`: the effective settings with every secret masked, and the production check."""

import json
from typing import Annotated, Any

import typer
from pydantic import SecretStr, ValidationError

from app.cli import common
from app.core.config import Settings, build_settings
from app.core.log_redact import scrub
from app.core.settings_groups import AppSettings, Environment
from app.core.settings_safety import unsafe_settings

MASK = "********"
# Plain-text settings whose names say they hold a secret are masked like SecretStr ones.
_SECRET_NAMES = ("PASSWORD", "SECRET", "TOKEN")


def shown(name: str, value: Any) -> Any:
    """The value as `config` prints it: secrets masked, passwords in URLs hidden."""
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, str):
        return MASK if any(part in name for part in _SECRET_NAMES) else scrub(value)
    if isinstance(value, list):
        return [shown(name, item) for item in value]
    return value


def effective(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every setting by group, under its environment name, secrets masked."""
    result: dict[str, dict[str, Any]] = {}
    for group_name in Settings.groups():
        group = getattr(settings, group_name)
        result[group_name] = {
            str(field.validation_alias): shown(str(field.validation_alias), getattr(group, key))
            for key, field in type(group).model_fields.items()
        }
    return result


def _env_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return json.dumps(value)
    return str(value)


def _describe(item: Any) -> str:
    location = ".".join(str(part) for part in item["loc"])
    message = str(item["msg"]).removeprefix("Value error, ")
    return f"{location}: {message}" if location else message


def refused(environment: Environment | None) -> list[str]:
    """Every setting start-up refuses, one line each; empty when the settings start.

    The safety rules are `core.settings_safety`'s own: settings that pass every other rule
    are built for the test environment (which skips them), then judged as the target one.
    """
    overrides: dict[str, Any] = {"ENVIRONMENT": environment} if environment else {}
    try:
        build_settings(**overrides)
    except ValidationError as error:
        found = [_describe(item) for item in error.errors() if "unsafe" not in str(item["msg"])]
        try:
            target = AppSettings(**overrides).environment
            relaxed = build_settings(ENVIRONMENT="test")
        except ValidationError:
            return found
        app = relaxed.app.model_copy(update={"environment": target})
        return found + unsafe_settings(relaxed.model_copy(update={"app": app}))
    return []


def check(environment: Environment | None) -> None:
    """Exit non-zero naming every setting that start-up would refuse."""
    found = refused(environment)
    target = environment or "this environment"
    for line in found:
        common.stderr.print(f"  - {line}", highlight=False, markup=False)
    if found:
        common.fail(f"{len(found)} setting(s) refused for {target}")
    common.stderr.print(f"configuration accepted for {target}")


def config(
    check_only: Annotated[
        bool, typer.Option("--check", help="Only check: exit 1 naming each refused setting.")
    ] = False,
    environment: Annotated[
        Environment | None,
        typer.Option(help="Judge the settings as if ENVIRONMENT were this (with --check)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, grouped.")] = False,
) -> None:
    """Print the effective settings (environment, then .env, then defaults), secrets masked."""
    if check_only or environment is not None:
        check(environment)
        return
    groups = effective(common.settings())
    if as_json:
        common.stdout.out(json.dumps(groups, indent=2), highlight=False)
        return
    for group_name, values in groups.items():
        common.stdout.out(f"# {group_name}", highlight=False)
        for name, value in values.items():
            common.stdout.out(f"{name}={_env_value(value)}", highlight=False)


def register(cli: typer.Typer) -> None:
    """Add `config` to the CLI."""
    common.register(
        cli,
        config,
        name="config",
        examples=[
            "app config",
            "app config --json",
            "app config --check",
            "ENVIRONMENT=production app config --check",
            "app config --check --environment production",
        ],
    )
