"""The outbound HTTP client: one per process, built in the wiring place, always with timeouts."""

import httpx2

CONNECT_TIMEOUT_SECONDS = 5.0
DEFAULT_TIMEOUT_SECONDS = 10.0


def create_http_client(*, user_agent: str) -> httpx2.AsyncClient:
    """Return a pooled async client whose every call has a connect and a total timeout."""
    return httpx2.AsyncClient(
        timeout=httpx2.Timeout(DEFAULT_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
        headers={"User-Agent": user_agent},
        follow_redirects=False,
    )
