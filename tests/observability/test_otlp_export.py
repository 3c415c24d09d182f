"""Spans leave for a real OTLP/HTTP receiver on loopback, as protobuf, when the app stops."""

import gzip
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from app.core.config import Settings
from tests.harness import started
from tests.identity import signed_up, unique_email
from tests.observability.loopback import LoopbackServer

pytestmark = pytest.mark.anyio

ME = "/api/v1/users/me"


class Collector(BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP trace exports at /v1/traces and keeps the decoded requests."""

    received: ClassVar[list[ExportTraceServiceRequest]] = []
    paths: ClassVar[list[str]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        with self.lock:
            type(self).received.append(export)
            type(self).paths.append(self.path)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


def exported() -> tuple[list[Span], set[str]]:
    spans, services = [], set()
    for export in Collector.received:
        for resource_spans in export.resource_spans:
            for attribute in resource_spans.resource.attributes:
                if attribute.key == "service.name":
                    services.add(attribute.value.string_value)
            for scope_spans in resource_spans.scope_spans:
                spans.extend(scope_spans.spans)
    return spans, services


async def test_a_request_and_its_statements_reach_the_collector(settings: Settings) -> None:
    Collector.received, Collector.paths = [], []
    with LoopbackServer(Collector) as collector:
        endpoint = collector.url.rstrip("/")
        async with started(settings, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint) as (_, client):
            headers = await signed_up(client, unique_email("otlp"))
            response = await client.get(ME, headers=headers)
        # Leaving `started` closed the app, and so flushed the exporter.
    spans, services = exported()
    assert response.status_code == 200
    assert set(Collector.paths) == {"/v1/traces"}
    assert services == {"production-fastapi-backend"}
    [server] = [span for span in spans if span.name == f"GET {ME}"]
    assert server.kind == Span.SPAN_KIND_SERVER
    children = [span for span in spans if span.parent_span_id == server.span_id]
    assert children
    assert all(span.trace_id == server.trace_id for span in children)
    assert all(span.kind == Span.SPAN_KIND_CLIENT for span in children)
    statements = [
        attribute.value.string_value
        for span in children
        for attribute in span.attributes
        if attribute.key == "db.statement"
    ]
    assert any(statement.startswith("SELECT") for statement in statements)
    request_ids = [a.value.string_value for a in server.attributes if a.key == "request_id"]
    assert request_ids == [response.headers["x-request-id"]]
