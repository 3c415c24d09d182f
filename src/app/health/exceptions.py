"""Errors of the operational endpoints."""

from app.core.errors import ForbiddenError


class MetricsAccessDenied(ForbiddenError):
    """`/metrics` from an address outside `METRICS_ALLOWED_IPS` without `METRICS_TOKEN`."""

    code = "metrics_forbidden"
    title = "Metrics Forbidden"
