"""Tracing on the real app, spans kept by the SDK's in-memory exporter."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from app.core.config import Settings
from app.deps import HttpClientDep, resources_of
from app.main import create_app
from tests.harness import LogLines, client_for, log_lines, make_settings, running
from tests.identity import signed_up, unique_email
from tests.items.helpers import create_item, item_url
from tests.observability.loopback import LoopbackServer

pytestmark = pytest.mark.anyio

TRACING = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_TRACES_EXPORTER": "none"}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
ME = "/api/v1/users/me"


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    context = span.get_span_context()
    assert context is not None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def servers(spans: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    return [span for span in spans if span.kind == SpanKind.SERVER]


@asynccontextmanager
async def traced(
    settings: Settings, prepare: Any = None, **overrides: Any
) -> AsyncIterator[tuple[FastAPI, AsyncClient, InMemorySpanExporter, LogLines]]:
    """The app with tracing on, every finished span kept in memory, and its log lines."""
    app = create_app(make_settings(DATABASE_URL=settings.database.url, **TRACING, **overrides))
    provider = resources_of(app).tracer_provider
    assert provider is not None
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    if prepare is not None:
        prepare(app)
    with log_lines() as logs:
        async with running(app), client_for(app) as client:
            yield app, client, exporter, logs


async def test_one_server_span_per_request_with_database_children_and_the_request_id(
    settings: Settings,
) -> None:
    async with traced(settings) as (_, client, exporter, logs):
        headers = await signed_up(client, unique_email("traced"))
        exporter.clear()
        response = await client.get(ME, headers=headers)
        spans = exporter.get_finished_spans()
    assert response.status_code == 200
    [server] = servers(spans)
    assert server.name == f"GET {ME}"
    assert server.attributes is not None
    assert server.attributes["request_id"] == response.headers["x-request-id"]
    assert server.attributes["http.route"] == ME
    children = [span for span in spans if span is not server]
    # Statements only: FastAPI's per-receive/send and operation spans are off.
    assert children
    assert {span.kind for span in children} == {SpanKind.CLIENT}
    assert all(span.parent is not None for span in children)
    assert {span.parent.span_id for span in children if span.parent} == {
        server.get_span_context().span_id  # type: ignore[union-attr]
    }
    assert any("SELECT" in span.name for span in children)
    # The access log line of the request carries the server span's ids.
    [line] = [line for line in logs.events("request") if line["path"] == ME]
    assert (line["trace_id"], line["span_id"]) == hex_ids(server)
    assert line["request_id"] == response.headers["x-request-id"]


async def test_an_incoming_traceparent_is_honoured(settings: Settings) -> None:
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    async with traced(settings) as (_, client, exporter, _logs):
        response = await client.get("/api/v1/meta", headers={"traceparent": traceparent})
        [server] = servers(exporter.get_finished_spans())
    assert response.status_code == 200
    assert hex_ids(server)[0] == TRACE_ID
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == PARENT_ID


class Recording(BaseHTTPRequestHandler):
    """Answers 204 and records the `traceparent` header of each request."""

    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("traceparent"))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


async def test_outbound_calls_carry_traceparent_and_get_client_spans(settings: Settings) -> None:
    Recording.seen = []
    with LoopbackServer(Recording) as upstream:

        def add_route(app: FastAPI) -> None:
            @app.get("/test-outbound")
            async def outbound(http: HttpClientDep) -> dict[str, int]:
                return {"status": (await http.get(upstream.url)).status_code}

        async with traced(settings, prepare=add_route) as (_, client, exporter, _logs):
            response = await client.get("/test-outbound")
            spans = exporter.get_finished_spans()
    assert response.json() == {"status": 204}
    [server] = servers(spans)
    [outgoing] = [span for span in spans if span.kind == SpanKind.CLIENT]
    [header] = Recording.seen
    assert header is not None
    trace_id, span_id = hex_ids(outgoing)
    assert header.startswith(f"00-{trace_id}-{span_id}-")
    assert int(header[-2:], 16) & 1  # sampled
    assert trace_id == hex_ids(server)[0]


@pytest.mark.redis
async def test_redis_commands_are_child_spans(settings: Settings, redis_url_or_skip: str) -> None:
    async with traced(settings, REDIS_URL=redis_url_or_skip) as (_, client, exporter, _logs):
        headers = await signed_up(client, unique_email("traced-redis"))
        item = await create_item(client, headers)
        exporter.clear()
        assert (await client.get(item_url(item["id"]), headers=headers)).status_code == 200
        spans = exporter.get_finished_spans()
    [server] = servers(spans)
    redis_spans = [s for s in spans if s.attributes and s.attributes.get("db.system") == "redis"]
    assert redis_spans
    assert all(hex_ids(span)[0] == hex_ids(server)[0] for span in redis_spans)


async def test_the_sampler_is_respected(settings: Settings) -> None:
    ratio_zero = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": 0}
    sampled_parent = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
    async with traced(settings, **ratio_zero) as (_, client, exporter, logs):
        for _ in range(5):
            await client.get("/api/v1/meta")
        unsampled = exporter.get_finished_spans()
        await client.get("/api/v1/meta", headers=sampled_parent)
        followed = exporter.get_finished_spans()
    assert unsampled == ()
    assert [hex_ids(span)[0] for span in followed] == [TRACE_ID]
    # Unsampled requests still log a trace id, which downstream services share.
    assert all(len(line["trace_id"]) == 32 for line in logs.events("request"))


async def test_scrapes_and_probes_are_not_traced(settings: Settings) -> None:
    async with traced(settings) as (_, client, exporter, _logs):
        for path in ("/metrics", "/health", "/api/v1/health/live", "/api/v1/health/ready"):
            assert (await client.get(path)).status_code == 200
        assert exporter.get_finished_spans() == ()


async def test_without_an_endpoint_there_is_no_tracing(client: AsyncClient, app: FastAPI) -> None:
    assert resources_of(app).tracer_provider is None
    with log_lines() as logs:
        await client.get("/api/v1/meta")
    [line] = logs.events("request")
    assert "trace_id" not in line
    assert "span_id" not in line


@pytest.mark.parametrize(
    ("overrides", "service"),
    [
        ({}, "production-fastapi-backend"),
        ({"APP_NAME": "Order Desk"}, "order-desk"),
        ({"APP_NAME": "Order Desk", "OTEL_SERVICE_NAME": "orders-api"}, "orders-api"),
    ],
    ids=["default", "app-name-slug", "otel-service-name"],
)
async def test_spans_carry_otel_service_name_else_the_app_name_as_a_slug(
    settings: Settings, overrides: dict[str, str], service: str
) -> None:
    async with traced(settings, **overrides) as (_, client, exporter, _logs):
        assert (await client.get("/api/v1/meta")).status_code == 200
        [server] = servers(exporter.get_finished_spans())
    assert server.resource.attributes["service.name"] == service
