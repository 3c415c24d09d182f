"""The `app` command: one module per command group, each with a `register(cli)`.

A new command is a module with its function and a `register` that calls
`common.register(cli, function, name=..., examples=[...])`, listed in `COMMANDS`.
"""

import sys
from collections.abc import Sequence

import typer

from app.cli import common, config, database, jobs, openapi, seed, serve, users, verify
from app.core.config import SettingsError
from app.core.log_redact import scrub

COMMANDS = (serve, database, jobs, users, openapi, config, seed, verify)
INTERRUPTED = 130

cli = typer.Typer(
    name="app",
    help="Run and operate the service: serve, migrate, create accounts, export, verify.",
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
for module in COMMANDS:
    module.register(cli)


def _error(message: str) -> None:
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"app: error: {scrub(first_line)}", file=sys.stderr)  # noqa: T201


def _settings_error(error: SettingsError) -> None:
    lines = [line.strip().removeprefix("- ") for line in str(error.code).splitlines()[1:]]
    _error("invalid configuration: " + "; ".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; every failure is one line on stderr and a non-zero exit, never a traceback."""
    command = typer.main.get_command(cli)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = command.main(args=args or ["--help"], prog_name="app", standalone_mode=False)
    except typer.TyperException as error:  # bad usage (exit 2) and typer's other errors
        context = getattr(error, "ctx", None)
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        _error(error.format_message() + hint)
        return error.exit_code
    except common.CliError as error:
        _error(str(error))
        return error.exit_code
    except (typer.Abort, KeyboardInterrupt):
        _error("interrupted")
        return INTERRUPTED
    except SettingsError as error:
        _settings_error(error)
        return 1
    except Exception as error:  # noqa: BLE001 - the one place every failure becomes a line
        _error(f"{type(error).__name__}: {error}")
        return 1
    return code if isinstance(code, int) else 0
