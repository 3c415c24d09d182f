"""Figures read rather than counted: the database pool, the Redis breaker, GC collections.

A scrape reads them in the worker that answers it; with several workers each worker also
reads them on a timer (`run`), so the merged gauges show every worker, not only the one the
scrape reached. GC collections are read only then: in one process prometheus-client's own
collector reports them.
"""

import asyncio
from collections.abc import Callable, Sequence

import structlog
from sqlalchemy.pool import Pool

from app.core.circuit import CircuitBreaker, State
from app.observability.metrics import Metrics

log = structlog.get_logger(__name__)

SAMPLE_INTERVAL_SECONDS = 5.0
# Ordered by how much is refused, so that the highest of several workers is the worst.
CIRCUIT_STATE_VALUES = {State.CLOSED: 0, State.HALF_OPEN: 1, State.OPEN: 2}


class PoolGauges:
    """Sets `db_pool_connections{state}` and `db_pool_max_connections` from the pool itself.

    Read, not counted from pool events: the counts a pool event sees are those from before
    the event, so event-driven gauges drift; the pool's own numbers never do.
    """

    def __init__(self, metrics: Metrics, pool: Pool, *, max_connections: int | None) -> None:
        self.pool = pool
        self.in_use = metrics.db_pool_connections.labels("in_use")
        self.idle = metrics.db_pool_connections.labels("idle")
        self.max_connections = metrics.db_pool_max_connections
        self.max_connections.set(max_connections or 0)

    def sample(self) -> None:
        """Read the pool's connection counts (queue pools have them; SQLite's static one not)."""
        checked_out = getattr(self.pool, "checkedout", None)
        checked_in = getattr(self.pool, "checkedin", None)
        if checked_out is None or checked_in is None:
            return
        self.in_use.set(checked_out())
        self.idle.set(checked_in())


class CircuitGauge:
    """Sets `redis_circuit_state` from the breaker itself (it knows nothing of metrics)."""

    def __init__(self, metrics: Metrics, breaker: CircuitBreaker) -> None:
        self.breaker = breaker
        self.gauge = metrics.redis_circuit_state

    def sample(self) -> None:
        """Read the breaker's state."""
        self.gauge.set(CIRCUIT_STATE_VALUES[self.breaker.state])


class Sampler:
    """Runs each reader now (`sample`) or every `interval` seconds until cancelled (`run`)."""

    def __init__(
        self, readers: Sequence[Callable[[], None]], *, interval: float = SAMPLE_INTERVAL_SECONDS
    ) -> None:
        self.readers = tuple(readers)
        self.interval = interval

    def sample(self) -> None:
        """Read every figure once."""
        for read in self.readers:
            read()

    async def run(self) -> None:
        """Read every figure every `interval` seconds; a failing reader is logged, not fatal."""
        while True:
            try:
                self.sample()
            except Exception:  # metrics must never stop the worker
                log.warning("metrics_sampling_failed", exc_info=True)
            await asyncio.sleep(self.interval)
