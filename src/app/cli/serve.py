"""`app serve`: uvicorn with our logging, our proxy handling and graceful shutdown."""

from typing import Annotated

import typer
import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from app.cli import common
from app.core.config import Settings
from app.core.logging import configure_logging
from app.server_limits import ServerConfig

APP_FACTORY = "app.main:create_app"
# Workers that stop together after the same number of requests leave no one serving:
# by default each gets up to a tenth more, at random.
DEFAULT_JITTER_RATIO = 0.1


def uvicorn_config(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    limit_max_requests: int | None = None,
    limit_max_requests_jitter: int | None = None,
) -> ServerConfig:
    """The uvicorn configuration `serve` runs, from its options and the settings."""
    if limit_max_requests is not None and limit_max_requests_jitter is None:
        limit_max_requests_jitter = int(limit_max_requests * DEFAULT_JITTER_RATIO)
    return ServerConfig(
        APP_FACTORY,
        # A request's head: uvicorn bounds neither its time nor its size (`app.server_limits`).
        header_timeout=settings.server.request_header_timeout_seconds,
        max_header_bytes=settings.server.max_request_header_bytes,
        problem_type_base_url=settings.api.problem_type_base_url,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # Our logging (configured by create_app in each worker), not uvicorn's dictConfig;
        # our access log middleware, not uvicorn's.
        log_config=None,
        access_log=False,
        # The app trusts X-Forwarded-* only from TRUSTED_PROXIES (its proxy headers layer);
        # uvicorn's own handling would believe any local peer.
        proxy_headers=False,
        server_header=False,
        limit_max_requests=limit_max_requests,
        limit_max_requests_jitter=limit_max_requests_jitter or 0,
        # Requests in flight when a worker stops get this long (the lifespan drains first).
        timeout_graceful_shutdown=settings.server.shutdown_grace_seconds,
        lifespan="on",
    )


def run_server(config: uvicorn.Config) -> None:
    """Run one server in this process, or a supervisor that restarts workers as they exit.

    Recycling needs the supervisor even for one worker: a worker that reached
    `--limit-max-requests` exits, and without a parent nobody starts the next one.
    """
    if config.workers > 1 or config.limit_max_requests is not None:
        supervisor = Multiprocess(config, sockets=[config.bind_socket()])
        supervisor.run()
        # uvicorn's parent exits 0 when a worker cannot start; an orchestrator must see it.
        started = all(process.exitcode != STARTUP_FAILURE for process in supervisor.processes)
    else:
        server = uvicorn.Server(config)
        server.run()
        started = server.started
    if not started:
        common.fail("the app did not start (see the log above)", STARTUP_FAILURE)


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8000,
    workers: Annotated[
        int, typer.Option(envvar="WEB_CONCURRENCY", min=1, help="Worker processes.")
    ] = 1,
    limit_max_requests: Annotated[
        int | None,
        typer.Option(min=1, help="Restart a worker after this many requests (recycling)."),
    ] = None,
    limit_max_requests_jitter: Annotated[
        int | None,
        typer.Option(min=0, help="Up to this many more requests per worker (default: 10% of it)."),
    ] = None,
) -> None:
    """Serve the API with uvicorn (app.main:create_app).

    Logs in the service's own format (LOG_FORMAT, LOG_LEVEL) with its own access log;
    X-Forwarded-* is trusted only as TRUST_PROXY_HEADERS and TRUSTED_PROXIES say. On SIGTERM
    each worker drains for SHUTDOWN_DRAIN_SECONDS, then gives requests in flight
    SHUTDOWN_GRACE_SECONDS.
    """
    settings = common.settings()
    configure_logging(settings.logging)
    config = uvicorn_config(
        settings,
        host=host,
        port=port,
        workers=workers,
        limit_max_requests=limit_max_requests,
        limit_max_requests_jitter=limit_max_requests_jitter,
    )
    run_server(config)


def register(cli: typer.Typer) -> None:
    """Add `serve` to the CLI."""
    common.register(
        cli,
        serve,
        name="serve",
        examples=[
            "app serve",
            "app serve --host 0.0.0.0 --port 8080 --workers 4",
            "WEB_CONCURRENCY=4 app serve --limit-max-requests 10000",
        ],
    )
