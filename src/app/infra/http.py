"""The outbound HTTP client: one per process, created in lifespan, always with timeouts."""

import httpx2

from app.core.config import Settings

CONNECT_TIMEOUT_SECONDS = 5.0
DEFAULT_TIMEOUT_SECONDS = 10.0


def create_http_client(settings: Settings) -> httpx2.AsyncClient:
    """Return a pooled async client whose every call has a connect and a total timeout."""
    return httpx2.AsyncClient(
        timeout=httpx2.Timeout(DEFAULT_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
        headers={"User-Agent": f"{settings.JWT_ISSUER}/http"},
        follow_redirects=False,
    )
