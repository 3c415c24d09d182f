"""`app worker` and `app scheduler`: the background-job processes beside the web app."""

from typing import Annotated

import typer

from app.cli import common
from app.infra.jobs import NeedsBroker
from app.worker import run_scheduler, run_worker

HOST = typer.Option("--host", help="Address of the /live and /metrics probe.")
USAGE = 2  # no broker is a configuration the command cannot work with, like bad usage


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", min=1, help="Jobs run at once [default: JOBS_CONCURRENCY]."),
    ] = None,
    host: Annotated[str, HOST] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8001,
) -> None:
    """Run jobs from the Redis broker until SIGTERM; running jobs get a grace period."""
    try:
        run_worker(common.settings(), concurrency=concurrency, host=host, port=port)
    except NeedsBroker as error:
        common.fail(str(error), USAGE)


def scheduler(
    host: Annotated[str, HOST] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8002,
) -> None:
    """Fire the cron schedules and send committed jobs to the broker (run exactly one)."""
    try:
        run_scheduler(common.settings(), host=host, port=port)
    except NeedsBroker as error:
        common.fail(str(error), USAGE)


def register(cli: typer.Typer) -> None:
    """Add `worker` and `scheduler` to `cli`."""
    common.register(
        cli,
        worker,
        name="worker",
        examples=[
            "REDIS_URL=redis://localhost:6379/0 app worker",
            "app worker --concurrency 20 --host 0.0.0.0 --port 8001",
        ],
    )
    common.register(
        cli,
        scheduler,
        name="scheduler",
        examples=["REDIS_URL=redis://localhost:6379/0 app scheduler --host 0.0.0.0"],
    )
