"""The two ways of counting requests give the same exposition."""

from prometheus_client import CollectorRegistry, Counter, generate_latest

from app.observability.http_metrics import LocalHttpMetrics, SharedHttpMetrics
from app.observability.metrics import HTTP_DURATION_BUCKETS
from tests.observability.helpers import Samples, parse, value

OBSERVATIONS = [
    ("GET", "/a", 200, 0.005),  # on a bound: counted in that bucket (le)
    ("GET", "/a", 200, 0.0051),
    ("GET", "/a", 404, 12.0),  # past every bound: only +Inf
    ("POST", "/b", 201, 0.2),
]


def exposition(kind: type[LocalHttpMetrics] | type[SharedHttpMetrics]) -> str:
    registry = CollectorRegistry()
    replays = Counter("idempotency_replays_total", "Replays.", registry=registry)
    metrics = kind(registry, buckets=HTTP_DURATION_BUCKETS, replays=replays)
    for method, route, status, seconds in OBSERVATIONS:
        metrics.started()
        metrics.finished(method, route, status, seconds)
    metrics.started()  # one still in flight
    metrics.replayed()
    return generate_latest(registry).decode()


def without_created(samples: Samples) -> Samples:
    # prometheus-client adds `*_created` unless told not to (create_metrics tells it).
    return {key: v for key, v in samples.items() if not key[0].endswith("_created")}


def test_plain_counts_expose_what_prometheus_client_would() -> None:
    local = without_created(parse(exposition(LocalHttpMetrics)))
    shared = without_created(parse(exposition(SharedHttpMetrics)))
    assert local == shared
    get_a = {"method": "GET", "route": "/a"}
    assert value(local, "http_request_duration_seconds_bucket", **get_a, le="0.005") == 1
    assert value(local, "http_request_duration_seconds_bucket", **get_a, le="0.01") == 2
    assert value(local, "http_request_duration_seconds_bucket", **get_a, le="10.0") == 2
    assert value(local, "http_request_duration_seconds_bucket", **get_a, le="+Inf") == 3
    assert value(local, "http_request_duration_seconds_count", **get_a) == 3
    assert value(local, "http_request_duration_seconds_sum", **get_a) == 0.005 + 0.0051 + 12.0
    assert value(local, "http_requests_total", **get_a, status="404") == 1
    assert value(local, "http_requests_in_progress") == 1
    assert value(local, "idempotency_replays_total") == 1
