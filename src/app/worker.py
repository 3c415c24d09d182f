"""The job worker and the scheduler: separate processes beside the web app (Redis broker).

`run_worker` takes jobs from the broker and runs them, `concurrency` at a time;
`run_scheduler` fires the cron schedules and sends due jobs (the outbox's dispatcher). Each
process serves `/live` and `/metrics` on its own small HTTP port for probes and scrapes.
SIGTERM or SIGINT: stop taking work; running jobs get JOBS_SHUTDOWN_GRACE_SECONDS, then go
back to the queue for another worker.

    app worker [--concurrency N] [--host H] [--port P]
    app scheduler [--host H] [--port P]
"""

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Iterator
from importlib.metadata import version

import anyio.to_thread
import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from taskiq.receiver import Receiver

from app.core.backoff import Backoff
from app.core.config import Settings
from app.core.errors import NotFoundError
from app.core.logging import configure_logging
from app.core.problems import ProblemRenderer
from app.health.deps import require_metrics_reader
from app.health.exceptions import MetricsAccessDenied
from app.infra.jobs import CANCEL_WAIT_SECONDS, NeedsBroker
from app.main import DISTRIBUTION
from app.middleware.security_headers import SecurityHeadersMiddleware
from app.observability.metrics import VARY_ACCEPT, render
from app.resources import Resources, build_resources, close_resources
from app.shutdown import EXIT_SECONDS, exit_by
from app.tasks import bind, pump

__all__ = ["NeedsBroker", "run_scheduler", "run_worker"]

log = structlog.get_logger(__name__)


def _probe_app(resources: Resources) -> Starlette:
    """`/live` for anyone; `/metrics` behind the web app's gate (`METRICS_ALLOWED_IPS`, the token).

    Every answer has the web app's hardening headers and `Cache-Control: no-store`.
    """
    settings = resources.settings
    renderer = ProblemRenderer(settings.api.problem_type_base_url)

    async def live(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def metrics(request: Request) -> Response:
        try:
            await require_metrics_reader(request, settings)
        except MetricsAccessDenied as exc:
            return renderer.from_exception(request.scope, exc)
        if resources.metrics is None:
            return renderer.from_exception(request.scope, NotFoundError("Metrics are off."))
        accept = request.headers.get("accept")
        body, media_type = await anyio.to_thread.run_sync(render, resources.metrics, accept)
        return Response(body, media_type=media_type, headers=VARY_ACCEPT)

    http = settings.http
    hardening = Middleware(
        SecurityHeadersMiddleware,
        csp=http.csp if http.csp_enabled else None,
        no_store_prefixes=("/",),
    )
    routes = [Route("/live", live), Route("/metrics", metrics)]
    return Starlette(routes=routes, middleware=[hardening])


def _probe_config(resources: Resources, *, host: str, port: int) -> uvicorn.Config:
    """The probe server: no `Server` banner, and no `X-Forwarded-*` trusted (no proxy is)."""
    return uvicorn.Config(
        _probe_app(resources),
        host=host,
        port=port,
        log_config=None,
        server_header=False,
        proxy_headers=False,
    )


class _ProbeServer(uvicorn.Server):
    """uvicorn serving the probes; the process, not uvicorn, handles the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def _process(
    settings: Settings, *, host: str, port: int, name: str
) -> AsyncIterator[tuple[Resources, asyncio.Event]]:
    """Resources, a stop event set by SIGTERM/SIGINT and the probe server, for one process."""
    resources = build_resources(settings, version=version(DISTRIBUTION))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = _ProbeServer(_probe_config(resources, host=host, port=port))
    serving = asyncio.create_task(server.serve())
    log.info(f"{name}_started", host=host, port=port)
    try:
        yield resources, stop
    finally:
        server.should_exit = True
        await serving
        await close_resources(resources)
        log.info(f"{name}_stopped")


def _require_broker(settings: Settings) -> None:
    if settings.jobs.broker_url is None and settings.redis.url is None:
        raise NeedsBroker(
            "No job broker: set REDIS_URL or JOBS_BROKER_URL. Without one, jobs run in the "
            "web process and there is nothing for a worker or scheduler to do."
        )


async def _work(settings: Settings, *, concurrency: int | None, host: str, port: int) -> None:
    async with _process(settings, host=host, port=port, name="worker") as (resources, stop):
        bind(resources)
        queue = resources.jobs
        await _listen(resources, stop, concurrency)
        grace = settings.jobs.shutdown_grace_seconds
        exit_by(grace + EXIT_SECONDS, "worker_exit_forced")
        await queue.stop_running(grace, min(CANCEL_WAIT_SECONDS, EXIT_SECONDS / 2))


async def _listen(
    resources: Resources,
    stop: asyncio.Event,
    concurrency: int | None = None,
    backoff: Backoff | None = None,
) -> None:
    """Take messages until `stop`, running `concurrency` (else JOBS_CONCURRENCY) at once.

    When Redis fails, wait and listen again (never exit): the wait grows while the broker
    stays away and starts over once it answers again.
    """
    backoff = backoff or Backoff(first=0.5, cap=10.0)
    limit = concurrency or resources.settings.jobs.concurrency
    while not stop.is_set():
        receiver = Receiver(
            resources.jobs.broker,
            max_async_tasks=limit,
            max_prefetch=0,
            run_startup=False,
            wait_tasks_timeout=0.0,  # the grace period is ours (`stop_running`)
        )
        try:
            await resources.jobs.start()  # (re)declares the consumer group
            backoff.reset()
            await receiver.listen(stop)
        except Exception as exc:  # noqa: BLE001 - a broker outage: jobs wait in the database
            delay = backoff.next_wait()
            log.warning("worker_broker_unavailable", error=type(exc).__name__, retry_in=delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()


async def _schedule(settings: Settings, *, host: str, port: int) -> None:
    async with _process(settings, host=host, port=port, name="scheduler") as (resources, stop):
        pumping = asyncio.create_task(pump(resources).run())
        await stop.wait()
        pumping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pumping


def run_worker(
    settings: Settings, *, concurrency: int | None = None, host: str = "127.0.0.1", port: int = 8001
) -> None:
    """Run the job worker until SIGTERM or SIGINT.

    Raises:
        NeedsBroker: no Redis broker is configured (embedded mode runs jobs in the web app).
    """
    _require_broker(settings)
    configure_logging(settings.logging, sql_echo=settings.database.echo)
    asyncio.run(_work(settings, concurrency=concurrency, host=host, port=port))


def run_scheduler(settings: Settings, *, host: str = "127.0.0.1", port: int = 8002) -> None:
    """Run the scheduler (cron schedules and the outbox's dispatcher) until SIGTERM or SIGINT.

    Raises:
        NeedsBroker: no Redis broker is configured (the web app schedules in embedded mode).
    """
    _require_broker(settings)
    configure_logging(settings.logging, sql_echo=settings.database.echo)
    asyncio.run(_schedule(settings, host=host, port=port))
