"""The tracing middleware on a tiny app: span names, attributes, errors, skipped paths."""

import pytest
from fastapi import FastAPI
from httpx2 import ASGITransport, AsyncClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.middleware import Middleware

from app.middleware.tracing import TracingMiddleware

pytestmark = pytest.mark.anyio


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def client(exporter: InMemorySpanExporter) -> AsyncClient:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    app = FastAPI(middleware=[Middleware(TracingMiddleware, tracer=tracer, untraced=["/ping"])])

    @app.get("/things/{thing_id}")
    async def read_thing(thing_id: int) -> dict[str, int]:
        return {"thing_id": thing_id}

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/fail")
    async def fail() -> None:
        raise RuntimeError("boom")

    transport = ASGITransport(app=app, raise_app_exceptions=False)
    return AsyncClient(transport=transport, base_url="http://testserver")


async def test_spans_are_named_after_the_route_and_described(
    exporter: InMemorySpanExporter,
) -> None:
    async with client(exporter) as c:
        await c.get("/things/7?secret=x")
        await c.get("/nowhere")
        await c.get("/ping")
    found, unmatched = exporter.get_finished_spans()
    assert (found.name, found.kind) == ("GET /things/{thing_id}", SpanKind.SERVER)
    assert dict(found.attributes or {}) == {
        "http.route": "/things/{thing_id}",
        "http.request.method": "GET",
        "url.path": "/things/7",  # never the query, which may hold secrets
        "url.scheme": "http",
        "network.protocol.version": "1.1",
        "http.response.status_code": 200,
    }
    assert found.status.status_code == StatusCode.UNSET
    assert unmatched.name == "GET"
    assert (unmatched.attributes or {})["http.response.status_code"] == 404


async def test_an_exception_marks_the_span_as_failed(exporter: InMemorySpanExporter) -> None:
    async with client(exporter) as c:
        assert (await c.get("/fail")).status_code == 500
    [span] = exporter.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR
    assert (span.attributes or {})["http.response.status_code"] == 500
    assert [event.name for event in span.events] == ["exception"]


async def test_repeated_tracestate_headers_are_joined(exporter: InMemorySpanExporter) -> None:
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    headers = [("traceparent", parent), ("tracestate", "a=1"), ("tracestate", "b=2")]
    async with client(exporter) as c:
        await c.get("/things/1", headers=headers)
    [span] = exporter.get_finished_spans()
    assert span.context is not None
    assert format(span.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert span.context.trace_state.to_header() == "a=1,b=2"
