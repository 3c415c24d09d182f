"""The long-lived clients of one process, built once from settings into one frozen container.

`build_resources` only constructs: nothing connects until first use, so an app that is built
but never started holds no connection. The lifespan closes them (`close_resources`).
"""

import dataclasses
from contextlib import AsyncExitStack

import httpx2
from opentelemetry.sdk.trace import TracerProvider
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.lifecycle import Lifecycle
from app.core.quotas import QuotaStore
from app.core.security import AccessTokenDecoder, PasswordHasher
from app.db.session import create_engine, create_read_session_factory, create_session_factory
from app.infra.cache import Cache, create_cache
from app.infra.geoip import CountryDatabase
from app.infra.http import create_http_client
from app.infra.jobs import JobQueue, broker_url, create_job_queue
from app.infra.mail import Mailer, create_mailer
from app.infra.oidc import OidcVerifier
from app.infra.rate_limit_storage import create_rate_limit_storage
from app.infra.redis import breaker_of, create_redis
from app.observability import tracing
from app.observability.alerts import SecurityAlerts
from app.observability.events import Events, circuit_transitions
from app.observability.http_metrics import HttpMetrics
from app.observability.metrics import Metrics, create_metrics
from app.observability.sampling import CircuitGauge, PoolGauges, Sampler
from app.observability.slow_statements import log_slow_statements


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Resources:
    """Everything a request may need that outlives it; read through `app.deps` only."""

    settings: Settings
    version: str
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    # Sessions for requests that only read (GET, HEAD): no BEGIN, no COMMIT.
    read_session_factory: async_sessionmaker[AsyncSession]
    redis: Redis | None
    cache: Cache
    rate_limit_storage: QuotaStore
    http: httpx2.AsyncClient
    mailer: Mailer
    jobs: JobQueue  # the broker: Redis when configured, else in-process
    password_hasher: PasswordHasher
    access_tokens: AccessTokenDecoder
    oidc_verifier: OidcVerifier | None
    tracer_provider: TracerProvider | None  # None: tracing is off
    metrics: Metrics | None  # None: METRICS_ENABLED=false
    http_metrics: HttpMetrics | None
    metrics_sampler: Sampler | None
    alerts: SecurityAlerts
    events: Events  # what the renderer, rate limiter and cache report
    geoip: CountryDatabase | None
    lifecycle: Lifecycle

    def replace(self, **changes: object) -> "Resources":
        """Return a copy with some resources swapped (tests isolate the database this way)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True, slots=True)
class _Observability:
    tracer_provider: TracerProvider | None
    metrics: Metrics | None
    sampler: Sampler | None
    alerts: SecurityAlerts
    events: Events


def _observe(
    settings: Settings,
    *,
    version: str,
    engine: AsyncEngine,
    redis: Redis | None,
    http: httpx2.AsyncClient,
    metrics: Metrics | None,
) -> _Observability:
    """Tracing, metrics and alerts for these clients (each only as far as its settings say)."""
    namespace = settings.app.slug
    provider = tracing.create_tracer_provider(
        settings.observability, service_name=namespace, version=version
    )
    if provider is not None:
        tracing.instrument_clients(provider, engine=engine, redis=redis, http=http)
    log_slow_statements(engine, threshold_ms=settings.observability.db_slow_query_ms)
    sampler = None
    if metrics is not None:
        database = settings.database
        pool = PoolGauges(
            metrics, engine.pool, max_connections=database.pool_size + database.max_overflow
        )
        gc_counts = [metrics.gc_counters.update] if metrics.gc_counters else []
        breaker = breaker_of(redis)
        circuit = [CircuitGauge(metrics, breaker).sample] if breaker is not None else []
        sampler = Sampler([pool.sample, *circuit, *gc_counts])
    alerts = SecurityAlerts(settings.alerts, http=http, service=namespace)
    return _Observability(provider, metrics, sampler, alerts, Events(metrics, alerts))


def _job_queue(settings: Settings) -> JobQueue:
    redis_url = settings.redis.url.get_secret_value() if settings.redis.url else None
    url = broker_url(settings.jobs, redis_url)
    return create_job_queue(settings.jobs, url=url, namespace=settings.app.slug)


def build_resources(settings: Settings, *, version: str) -> Resources:
    """Construct every long-lived client from its settings group; none connects yet."""
    namespace = settings.app.slug
    engine = create_engine(settings.database, application_name=settings.app.name)
    redis = create_redis(settings.redis)
    metrics = create_metrics(settings.metrics) if settings.metrics.enabled else None
    http = create_http_client(
        settings.outbound,
        user_agent=f"{namespace}/{version}",
        on_circuit_transition=circuit_transitions(metrics),
    )
    observed = _observe(
        settings, version=version, engine=engine, redis=redis, http=http, metrics=metrics
    )
    cache = create_cache(
        settings.cache, redis, namespace=namespace, on_result=observed.events.cache_result
    )
    return Resources(
        settings=settings,
        version=version,
        engine=engine,
        session_factory=create_session_factory(engine),
        read_session_factory=create_read_session_factory(engine),
        redis=redis,
        cache=cache,
        rate_limit_storage=create_rate_limit_storage(
            redis, namespace=namespace, strategy=settings.rate_limit.strategy
        ),
        http=http,
        mailer=create_mailer(settings.mail, environment=settings.app.environment),
        jobs=_job_queue(settings),
        password_hasher=PasswordHasher.from_settings(settings.auth),
        access_tokens=AccessTokenDecoder(settings.auth),
        oidc_verifier=(
            OidcVerifier.from_settings(settings.oidc, http)
            if settings.auth.provider == "oidc"
            else None
        ),
        tracer_provider=observed.tracer_provider,
        metrics=observed.metrics,
        http_metrics=observed.metrics.http if observed.metrics else None,
        metrics_sampler=observed.sampler,
        alerts=observed.alerts,
        events=observed.events,
        # Memory-mapped: opening reads only the file's metadata.
        geoip=CountryDatabase(path) if (path := settings.geoip.database_path) else None,
        lifecycle=Lifecycle(),
    )


async def close_resources(resources: Resources) -> None:
    """Close every client that holds connections, in the reverse order of construction."""
    async with AsyncExitStack() as stack:
        stack.push_async_callback(resources.engine.dispose)
        if resources.geoip is not None:
            stack.callback(resources.geoip.close)
        if resources.redis is not None:
            stack.push_async_callback(resources.redis.aclose)
        stack.push_async_callback(resources.http.aclose)
        stack.push_async_callback(resources.jobs.close)
        if resources.tracer_provider is not None:
            stack.push_async_callback(tracing.shutdown, resources.tracer_provider)
        stack.push_async_callback(resources.alerts.aclose)
