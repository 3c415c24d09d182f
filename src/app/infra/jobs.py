"""The job broker: taskiq's in-memory broker (embedded) or a Redis stream (taskiq-redis).

Messages carry only a job id: the job itself (task, arguments, attempts, state) lives in the
database, which is what makes a job exist exactly when its request committed. The broker is
the transport that wakes a worker; the consumer (`consume_with`) is bound by the wiring.
"""

import asyncio
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from taskiq import AckableMessage, AsyncBroker, InMemoryBroker
from taskiq.utils import maybe_awaitable
from taskiq_redis import RedisStreamBroker

from app.core.settings_jobs import JobsSettings

log = structlog.get_logger(__name__)

RUN_TASK = "app.run_job"
CONSUMER_GROUP = "workers"
# The stream keeps at most about this many messages: a job whose message was trimmed before
# a worker read it is sent again by the dispatcher (JOBS_REDISPATCH_SECONDS).
STREAM_MAX_LENGTH = 100_000
XREAD_BLOCK_MS = 2_000
CONNECT_TIMEOUT_SECONDS = 2.0
# A message read once but never acknowledged (its worker was killed) goes to another
# consumer after this long; the job's own lease usually re-runs it sooner.
AUTOCLAIM_LOCK_SECONDS = 5
# How long cancelled jobs get to stop at shutdown: a handler that ignores its cancellation (a
# blocking call, swallowed CancelledError) is left behind, not waited for.
CANCEL_WAIT_SECONDS = 2.0

Consumer = Callable[[str], Awaitable[None]]


class NeedsBroker(RuntimeError):
    """A worker or scheduler was started with no Redis broker configured.

    Without one, jobs run inside the web process (embedded mode): a separate worker has
    nothing to take jobs from.
    """


class JobQueue:
    """Sends job ids to the broker and hands received ones to the bound consumer."""

    def __init__(self, broker: AsyncBroker, *, embedded: bool, concurrency: int) -> None:
        self.broker = broker
        self.embedded = embedded
        self.concurrency = concurrency
        self._consumer: Consumer | None = None
        self._running: set[asyncio.Task[object]] = set()  # jobs running in this process
        # Embedded: jobs sent to this process that have not started yet. Counted from the
        # moment a dispatcher takes their slots, so concurrent dispatches cannot both see
        # the same slot free.
        self._reserved = 0
        self._idle = asyncio.Event()
        self._idle.set()

        async def run_job(job_id: str) -> None:
            await self._receive(job_id)

        self._task = broker.register_task(run_job, task_name=RUN_TASK)

    def consume_with(self, consumer: Consumer) -> None:
        """Run `consumer(job_id)` for every message this process receives."""
        self._consumer = consumer

    async def _receive(self, job_id: str) -> None:
        if self._consumer is None:
            raise RuntimeError("no job consumer is bound")
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        self._reserved = max(0, self._reserved - 1)  # its reserved slot is now a running one
        self._idle.clear()
        try:
            await self._consumer(job_id)
        finally:
            self._running.discard(task)
            if not self._running:
                self._idle.set()

    async def send(self, job_id: uuid.UUID) -> None:
        """Put one job id on the queue (raises when the broker cannot be reached)."""
        await self._task.kiq(str(job_id))

    def reserve(self, wanted: int) -> int:
        """Take up to `wanted` slots for jobs about to be sent; return how many were granted.

        Embedded, at most `concurrency` jobs run or wait to start in this process; give back
        what is not sent with `release`. With Redis every one is granted: each worker's
        receiver takes only as many as it may run.
        """
        if not self.embedded:
            return wanted
        granted = max(0, min(wanted, self.concurrency - len(self._running) - self._reserved))
        self._reserved += granted
        return granted

    def release(self, count: int) -> None:
        """Give back `count` reserved slots whose jobs were not sent."""
        if self.embedded:
            self._reserved = max(0, self._reserved - count)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no job runs in this process (embedded mode); False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def stop_running(
        self,
        grace: float,
        cancel_wait: float = CANCEL_WAIT_SECONDS,
        *,
        on_cancel: Callable[[], None] | None = None,
    ) -> int:
        """Let running jobs finish within `grace` seconds, then cancel the rest.

        A cancelled job hands itself back to the queue, so another worker runs it. Cancelled
        jobs get `cancel_wait` seconds to stop; return how many did not (they still hold
        their lease, and run again elsewhere once it lapses). `on_cancel` is called when
        there are jobs to cancel, before they are: one that stops may still leave its handler's
        thread running, which a count of tasks cannot show.
        """
        if await self.wait_idle(grace):
            return 0
        if on_cancel is not None:
            on_cancel()
        running = list(self._running)
        for task in running:
            task.cancel()
        _, pending = await asyncio.wait(running, timeout=cancel_wait)
        if pending:
            log.warning("jobs_not_stopped", count=len(pending), waited=cancel_wait)
        return len(pending)

    async def ping(self) -> None:
        """Check the broker answers (Redis only; the in-memory broker always does)."""
        if isinstance(self.broker, RedisStreamBroker):
            async with Redis(connection_pool=self.broker.connection_pool) as client:
                await client.ping()

    async def start(self) -> None:
        """Prepare the broker (a Redis consumer group is declared on first use)."""
        await self.broker.startup()

    async def close(self) -> None:
        """Close the broker's connections."""
        await self.broker.shutdown()


class _StreamBroker(RedisStreamBroker):
    """taskiq-redis's stream broker, whose acknowledgements never raise.

    A message is acknowledged after its job ran, from a task taskiq does not await: an
    acknowledgement that met a Redis outage ended that task with an error nobody read, logged
    by asyncio with a traceback. Unacknowledged, the message is delivered again later
    (`idle_timeout`), and its job, already settled, is not run again (`jobs.claims`).
    """

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        """Yield the stream's messages, each with an acknowledgement that logs its failure."""
        async for message in super().listen():
            yield AckableMessage(data=message.data, ack=_logging_failures(message.ack))


def _logging_failures(ack: Callable[[], Awaitable[None] | None]) -> Callable[[], Awaitable[None]]:
    async def acknowledge() -> None:
        try:
            await maybe_awaitable(ack())
        except (RedisError, OSError) as exc:
            log.warning("job_ack_failed", error=type(exc).__name__)

    return acknowledge


def broker_url(settings: JobsSettings, redis_url: str | None) -> str | None:
    """The Redis URL of the broker: `JOBS_BROKER_URL`, else `REDIS_URL`, else None."""
    if settings.broker_url is not None:
        return settings.broker_url.get_secret_value()
    return redis_url


def create_job_queue(settings: JobsSettings, *, url: str | None, namespace: str) -> JobQueue:
    """Build the queue: a Redis stream when `url` is set, else the in-memory broker."""
    if url is None:
        # Eager: `send` runs the job before it returns (tests see its effects at once).
        memory = InMemoryBroker(await_inplace=settings.eager)
        return JobQueue(memory, embedded=True, concurrency=settings.concurrency)
    broker = _StreamBroker(
        url,
        queue_name=f"{namespace}:jobs",
        consumer_group_name=CONSUMER_GROUP,
        consumer_id="0",  # a group created late still sees messages sent before it
        xread_block=XREAD_BLOCK_MS,
        xread_count=1,  # take one job at a time: idle workers get the rest
        maxlen=STREAM_MAX_LENGTH,
        idle_timeout=int(settings.redispatch_seconds * 1000),
        unacknowledged_lock_timeout=AUTOCLAIM_LOCK_SECONDS,
        # Pool wait, connect and read timeouts: a read blocks XREAD_BLOCK_MS at most.
        timeout=CONNECT_TIMEOUT_SECONDS,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=XREAD_BLOCK_MS / 1000 + CONNECT_TIMEOUT_SECONDS,
        # A pooled connection Redis closed when it restarted: tried again at once, on a new
        # one, as the app's own client does (`infra.redis`); a timeout is never retried.
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )
    return JobQueue(broker, embedded=False, concurrency=settings.concurrency)
