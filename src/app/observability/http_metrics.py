"""The metrics every request touches, counted the cheapest way each mode allows.

`http_requests_total`, `http_request_duration_seconds` and `http_requests_in_progress` are
what a request pays for metrics (bench/observability_overhead.py). In one process they are
plain Python numbers, read by a collector at scrape time (about 0.7 µs a request, against about
6 µs through prometheus-client's locked values); with several workers they must live in the
shared files, so they are prometheus-client metrics.
"""

import bisect
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

REQUESTS = ("http_requests", "HTTP requests answered.", ("method", "route", "status"))
DURATION = (
    "http_request_duration_seconds",
    "Time from receiving an HTTP request to sending its last byte.",
    ("method", "route"),
)
IN_PROGRESS = ("http_requests_in_progress", "HTTP requests being answered right now.")


class LocalHttpMetrics(Collector):
    """The request metrics of a single process, as plain counts.

    Only the event loop's thread writes them (the middleware runs there); a scrape reads them
    from a worker thread, copying each dict or list in one step under the GIL, so it sees
    whole values, at worst a request's count without its duration.
    """

    def __init__(
        self, registry: CollectorRegistry, *, buckets: Sequence[float], replays: Counter
    ) -> None:
        self.bounds = tuple(buckets)
        self.replays = replays
        self.in_progress = 0
        self.requests: dict[tuple[str, str, int], int] = {}
        # Per (method, route): a count per bucket (the last one past every bound), then the sum.
        self.durations: dict[tuple[str, str], list[float]] = {}
        registry.register(self)

    def started(self) -> None:
        """Count a request in progress."""
        self.in_progress += 1

    def finished(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count a request answered, and its duration."""
        self.in_progress -= 1
        key = (method, route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        histogram = self.durations.get((method, route))
        if histogram is None:
            histogram = self.durations[(method, route)] = [0.0] * (len(self.bounds) + 2)
        # `le` buckets: the first bound at or above the duration.
        histogram[bisect.bisect_left(self.bounds, seconds)] += 1
        histogram[-1] += seconds

    def replayed(self) -> None:
        """Count a response replayed for a repeated Idempotency-Key."""
        self.replays.inc()

    def collect(self) -> Iterable[Metric]:
        """The three families, from a copy of the counts."""
        requests = CounterMetricFamily(*REQUESTS[:2], labels=REQUESTS[2])
        for (method, route, status), count in list(self.requests.items()):
            requests.add_metric([method, route, str(status)], count)
        duration = HistogramMetricFamily(*DURATION[:2], labels=DURATION[2])
        for (method, route), histogram in list(self.durations.items()):
            counts = list(histogram)
            cumulative, buckets = 0.0, []
            for bound, in_bucket in zip((*map(str, self.bounds), "+Inf"), counts[:-1], strict=True):
                cumulative += in_bucket
                buckets.append((bound, cumulative))
            duration.add_metric([method, route], buckets, counts[-1])
        return [requests, duration, GaugeMetricFamily(*IN_PROGRESS, value=self.in_progress)]


class SharedHttpMetrics:
    """The request metrics of one worker among several: values in the shared files."""

    def __init__(
        self, registry: CollectorRegistry, *, buckets: Sequence[float], replays: Counter
    ) -> None:
        self.replays = replays
        self._requests = Counter(*REQUESTS, registry=registry)
        self._duration = Histogram(*DURATION, registry=registry, buckets=buckets)
        # livesum: the workers' values add up, and a dead worker's drop out.
        self._in_progress = Gauge(*IN_PROGRESS, registry=registry, multiprocess_mode="livesum")
        # `labels()` takes a lock and builds a key each call: children are cached per label set.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def started(self) -> None:
        """Count a request in progress."""
        self._in_progress.inc()

    def finished(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count a request answered, and its duration."""
        self._in_progress.dec()
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self._requests.labels(method, route, str(status)),
                self._duration.labels(method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def replayed(self) -> None:
        """Count a response replayed for a repeated Idempotency-Key."""
        self.replays.inc()


HttpMetrics = LocalHttpMetrics | SharedHttpMetrics
