"""What the rest of the service reports, turned into metrics and alerts.

The problem renderer, the rate limiter, the cache and the job runner know nothing of
Prometheus: the wiring hands them these bound methods as callbacks, through their constructors.
"""

from collections.abc import Callable
from http import HTTPStatus

from prometheus_client import Counter

from app.observability.alerts import SecurityAlerts
from app.observability.metrics import Metrics

AUTH_FAILURE_STATUSES = frozenset({HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN})


class Events:
    """Callbacks for the renderer (`problem`), rate limiter and cache; metrics may be off."""

    def __init__(self, metrics: Metrics | None, alerts: SecurityAlerts) -> None:
        self.metrics = metrics
        self.alerts = alerts
        # Label children per value: codes and cache results are a short, fixed list.
        self._auth_failures: dict[str, Counter] = {}
        self._cache_results: dict[str, Counter] = {}
        self._job_outcomes: dict[tuple[str, str], Counter] = {}

    def problem(self, status: int, code: str) -> None:
        """Count 401 and 403 problems as auth failures, by their code."""
        if status not in AUTH_FAILURE_STATUSES:
            return
        if self.metrics is not None:
            child = self._auth_failures.get(code)
            if child is None:
                child = self._auth_failures[code] = self.metrics.auth_failures.labels(code)
            child.inc()
        self.alerts.auth_failure()

    def rate_limited(self) -> None:
        """Count a request the rate limiter refused."""
        if self.metrics is not None:
            self.metrics.rate_limit_rejections.inc()
        self.alerts.rate_limited()

    def rate_limit_backend_error(self) -> None:
        """Count a failed rate-limit storage call."""
        if self.metrics is not None:
            self.metrics.rate_limit_backend_errors.inc()

    def cache_result(self, result: str) -> None:
        """Count a cache call by its result (hit, miss, error, skipped)."""
        if self.metrics is None:
            return
        child = self._cache_results.get(result)
        if child is None:
            child = self._cache_results[result] = self.metrics.cache_requests.labels(result)
        child.inc()

    def job_outcome(self, task: str, outcome: str) -> None:
        """Count one job attempt by its task and outcome (docs/jobs.md lists the outcomes)."""
        if self.metrics is None:
            return
        key = (task, outcome)
        child = self._job_outcomes.get(key)
        if child is None:
            child = self._job_outcomes[key] = self.metrics.jobs.labels(task, outcome)
        child.inc()


def circuit_transitions(metrics: Metrics | None) -> Callable[[str], None] | None:
    """The outbound client's callback: count each breaker state change by the new state."""
    if metrics is None:
        return None
    counter = metrics.http_circuit_transitions
    children = {state: counter.labels(state) for state in ("open", "half_open", "closed")}
    return lambda state: children[state].inc()
