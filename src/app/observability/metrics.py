"""Prometheus metrics: every name the service exports is defined here, once.

`create_metrics` builds them into one registry per process (`Resources.metrics`); the parts of
the service that count things receive a metric, or a callback that touches one, through their
constructors. `render` turns the registry into the text `GET /metrics` answers.

Adding a metric: add a field to `Metrics`, define it in `_define` (a gauge needs a
`multiprocess_mode`, see docs/observability.md), and hand it to its owner where
`app/resources.py` builds that owner.
"""

import dataclasses
import functools
import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from app.core.settings_operations import MetricsSettings
from app.observability import multiprocess
from app.observability.http_metrics import HttpMetrics, LocalHttpMetrics, SharedHttpMetrics

# Seconds; from a cached read (a few ms) to the statement timeout's neighbourhood.
HTTP_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Metrics:
    """The process's registry and every metric in it (names in docs/observability.md)."""

    registry: CollectorRegistry
    multiproc_dir: str | None
    http: HttpMetrics  # what the metrics middleware reports to
    db_pool_connections: Gauge
    db_pool_max_connections: Gauge
    rate_limit_rejections: Counter
    rate_limit_backend_errors: Counter
    cache_requests: Counter
    redis_circuit_state: Gauge
    http_circuit_transitions: Counter
    auth_failures: Counter
    idempotency_replays: Counter
    jobs: Counter
    # Multiprocess mode: GC counts, which a timer adds up (see `multiprocess.GcCounters`).
    gc_counters: multiprocess.GcCounters | None = None


class MultiprocDirMismatch(RuntimeError):
    """`PROMETHEUS_MULTIPROC_DIR` in the settings is not the one prometheus-client uses."""


def _checked_multiproc_dir(settings: MetricsSettings) -> str | None:
    # The library chose its value storage when imported, from the process environment; a
    # directory named only in `.env` would leave every worker counting on its own.
    used = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if settings.multiproc_dir != used:
        raise MultiprocDirMismatch(
            "PROMETHEUS_MULTIPROC_DIR must be set in the process environment (not only in "
            f".env): the settings say {settings.multiproc_dir!r}, the environment {used!r}."
        )
    return used


def create_metrics(settings: MetricsSettings) -> Metrics:
    """Define every metric in a new registry; in multiprocess mode, prepare the directory.

    Raises:
        MultiprocDirMismatch: `PROMETHEUS_MULTIPROC_DIR` is set in `.env` only.
    """
    directory = _checked_multiproc_dir(settings)
    # `*_created` series would double what every scrape carries, for a reset time that
    # Prometheus infers by itself.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    if directory is None:
        return _define(CollectorRegistry(), None)
    # Under the directory's lock: a sibling worker starting at the same moment must see this
    # worker's files before it decides whether the directory is left over from an old run.
    with multiprocess.prepared(directory):
        return _define(CollectorRegistry(), directory)


def _define(registry: CollectorRegistry, directory: str | None) -> Metrics:
    counter = functools.partial(Counter, registry=registry)
    # livesum: the workers' values add up, and a dead worker's drop out.
    gauge = functools.partial(Gauge, registry=registry, multiprocess_mode="livesum")
    replays = counter(
        "idempotency_replays_total", "Responses replayed for a repeated Idempotency-Key."
    )
    http = LocalHttpMetrics if directory is None else SharedHttpMetrics
    metrics = Metrics(
        registry=registry,
        multiproc_dir=directory,
        http=http(registry, buckets=HTTP_DURATION_BUCKETS, replays=replays),
        db_pool_connections=gauge(
            "db_pool_connections", "Database connections by state (in_use, idle).", ("state",)
        ),
        db_pool_max_connections=gauge(
            "db_pool_max_connections", "Connections the database pool may open at most."
        ),
        rate_limit_rejections=counter(
            "rate_limit_rejections_total", "Requests refused with 429 by the rate limiter."
        ),
        rate_limit_backend_errors=counter(
            "rate_limit_backend_errors_total", "Rate-limit storage (Redis) calls that failed."
        ),
        cache_requests=counter(
            "cache_requests_total",
            "Cache calls by result (hit, miss, error, skipped).",
            ("result",),
        ),
        # Every worker has its own breaker: the worst state among the live ones.
        redis_circuit_state=gauge(
            "redis_circuit_state",
            "The Redis circuit breaker: 0 closed, 1 half-open, 2 open.",
            multiprocess_mode="livemax",
        ),
        auth_failures=counter(
            "auth_failures_total", "401 and 403 problems, by their code.", ("reason",)
        ),
        idempotency_replays=replays,
        http_circuit_transitions=counter(
            "http_circuit_transitions_total",
            "Outbound HTTP circuit breakers changing state (open, half_open, closed).",
            ("state",),
        ),
        jobs=counter(
            "jobs_total", "Background jobs run, by task and outcome.", ("task", "outcome")
        ),
    )
    if directory is not None:
        return dataclasses.replace(metrics, gc_counters=multiprocess.GcCounters(counter))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return metrics


# The format follows `Accept` (`render`): a cache in front must not hand one client's format
# to another.
VARY_ACCEPT = {"Vary": "Accept"}


def render(metrics: Metrics, accept: str | None) -> tuple[bytes, str]:
    """Return the exposition of every metric and its media type (OpenMetrics when asked).

    Blocking (reads the multiprocess files): call it from a worker thread.
    """
    encode, media_type = choose_encoder(accept or "")
    if metrics.multiproc_dir is None:
        return encode(metrics.registry), media_type
    # The workers' files, merged, and each live worker's own process figures.
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=metrics.multiproc_dir)  # type: ignore[no-untyped-call]
    multiprocess.WorkerProcessCollector(metrics.multiproc_dir, registry=registry)
    PlatformCollector(registry=registry)
    return encode(registry), media_type
