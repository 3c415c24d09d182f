"""Who may read the metrics: an allowed address, or the bearer of `METRICS_TOKEN`."""

import hmac
import ipaddress

from fastapi import Request

from app.deps import SettingsDep
from app.health.exceptions import MetricsAccessDenied


def _allowed_address(host: str | None, networks: list[str]) -> bool:
    if host is None:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a test client's "testclient", a unix socket's path
        return False
    return any(address in ipaddress.ip_network(network) for network in networks)


def _bearer(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


async def require_metrics_reader(request: Request, settings: SettingsDep) -> None:
    """Let the request through from `METRICS_ALLOWED_IPS` or with the token; else 403.

    The address is the one the server (or, behind trusted proxies, the proxy-headers layer)
    resolved.
    """
    options = settings.metrics
    if _allowed_address(request.client.host if request.client else None, options.allowed_ips):
        return
    token, offered = options.token, _bearer(request)
    if token is not None and offered is not None:
        expected = token.get_secret_value().encode()
        if hmac.compare_digest(offered.encode(), expected):
            return
    raise MetricsAccessDenied("Metrics are readable from allowed addresses or with the token.")
