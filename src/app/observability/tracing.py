"""Tracing with OpenTelemetry: off unless `OTEL_EXPORTER_OTLP_ENDPOINT` names a collector.

When on, one tracer provider per process (`Resources.tracer_provider`) serves:
- the tracing middleware's server span: one span per request named after the route template,
  `traceparent` honoured (no span per receive or send, none per dependency);
- the SQLAlchemy, Redis and httpx2 instrumentations, attached to our own clients only (no
  global patching), so database statements, Redis commands and outbound calls are child
  spans and outbound calls carry `traceparent`.
Log lines carry the current span's ids (`app.core.logging`).
"""

from collections.abc import Sequence

import anyio.to_thread
import httpx2
from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.settings_operations import ObservabilitySettings

REQUEST_ID_ATTRIBUTE = "request_id"  # the log lines' name, so one search finds both
_SQLALCHEMY_SCOPE = "opentelemetry.instrumentation.sqlalchemy"
_NO_METRICS = NoOpMeterProvider()  # our metrics are Prometheus's; the instrumentations' go nowhere


class WithinTraces(Sampler):
    """Drops client spans (statements, Redis commands, calls out) that no trace contains.

    Requests left untraced (probes, scrapes) and start-up work still query the database; alone,
    each of those statements would be a trace of its own, noise that costs export.
    """

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner

    def should_sample(  # noqa: PLR0917 - the SDK's signature
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        """Drop an orphan client span; ask the configured sampler about everything else."""
        parent = trace.get_current_span(parent_context).get_span_context()
        if kind == SpanKind.CLIENT and not parent.is_valid:
            return SamplingResult(Decision.DROP)
        return self.inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        """Name the sampler as the SDK's do."""
        return f"WithinTraces{{{self.inner.get_description()}}}"


def sampler(settings: ObservabilitySettings) -> Sampler:
    """Return the sampler `OTEL_TRACES_SAMPLER` (and `..._ARG`, the ratio) name."""
    ratio = TraceIdRatioBased(settings.traces_sampler_arg)
    root: Sampler = {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        "traceidratio": ratio,
    }[settings.traces_sampler.removeprefix("parentbased_")]
    chosen = ParentBased(root) if settings.traces_sampler.startswith("parentbased_") else root
    return WithinTraces(chosen)


def create_tracer_provider(
    settings: ObservabilitySettings, *, service_name: str, version: str
) -> TracerProvider | None:
    """Return a provider exporting to `<OTEL_EXPORTER_OTLP_ENDPOINT>/v1/traces`, or None (off).

    Spans leave in batches from the SDK's own thread, never from a request.
    """
    if not settings.otlp_endpoint:
        return None
    resource = Resource.create(
        {SERVICE_NAME: settings.service_name or service_name, SERVICE_VERSION: version}
    )
    provider = TracerProvider(resource=resource, sampler=sampler(settings))
    if settings.traces_exporter == "otlp":
        endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def instrument_clients(
    provider: TracerProvider, *, engine: AsyncEngine, redis: Redis | None, http: httpx2.AsyncClient
) -> None:
    """Trace the statements, Redis commands and outbound calls of these clients."""
    # EngineTracer is what SQLAlchemyInstrumentor(engine=...) builds; the instrumentor itself
    # patches create_engine globally and instruments only once per process, so a second app
    # in the same process (tests) would go untraced.
    connections = _NO_METRICS.get_meter(_SQLALCHEMY_SCOPE).create_up_down_counter(
        "db.client.connections.usage"
    )
    tracer = provider.get_tracer(_SQLALCHEMY_SCOPE)
    EngineTracer(tracer, engine.sync_engine, connections)  # type: ignore[no-untyped-call]
    if redis is not None:
        RedisInstrumentor.instrument_client(redis, tracer_provider=provider)
    HTTPX2ClientInstrumentor.instrument_client(
        http, tracer_provider=provider, meter_provider=_NO_METRICS
    )


# FastAPI's built-in telemetry stays off: app/middleware/tracing.py makes the same server span
# for a small part of its cost (measured there), and our metrics are Prometheus's. Explicit,
# so `FASTAPI_OTEL_AUTO_CONFIGURE` never adds exporters of its own.
FASTAPI_TELEMETRY_OFF: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
}


def server_tracer(provider: TracerProvider) -> Tracer:
    """The tracer of the server spans (app/middleware/tracing.py)."""
    return provider.get_tracer("app.middleware.tracing")


def tag_request_id(request_id: str) -> None:
    """Record the request id on the current (server) span."""
    trace.get_current_span().set_attribute(REQUEST_ID_ATTRIBUTE, request_id)


async def shutdown(provider: TracerProvider) -> None:
    """Export the spans still queued and stop the exporter, off the event loop."""
    await anyio.to_thread.run_sync(provider.shutdown)


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span, to carry into work done later; None if none."""
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")


def continued(traceparent: str | None) -> Context:
    """The context a `traceparent` names: spans started in it join the original trace."""
    return TraceContextTextMapPropagator().extract({"traceparent": traceparent or ""})
