"""Every layer that treats some paths apart reads the path as the routes do: below the
`root_path` a proxy mounts the service at, cut only where the path continues it with '/'.
"""

from typing import Any

import pytest
from httpx2 import ASGITransport, AsyncClient
from starlette.middleware import Middleware

from app.middleware.country_block import CountryBlockMiddleware
from app.middleware.trusted_host import TrustedHostMiddleware
from tests.middleware.apps import RENDERER, inline_app

pytestmark = pytest.mark.anyio

# Each refuses every request but the probes below `/health`.
REFUSING: dict[str, Middleware] = {
    "trusted-host": Middleware(
        TrustedHostMiddleware,
        allowed_hosts=["api.example.com"],
        renderer=RENDERER,
        exempt=["/health"],
    ),
    "country-block": Middleware(
        CountryBlockMiddleware,
        country_of=lambda _: None,
        renderer=RENDERER,
        block_unknown=True,
        exempt=["/health"],
    ),
}


async def status(layer: Middleware, path: str, root_path: str) -> int:
    transport = ASGITransport(app=inline_app(layer), root_path=root_path)
    async with AsyncClient(transport=transport, base_url="http://10.1.2.3:8000") as c:
        return (await c.get(path)).status_code


@pytest.mark.parametrize("layer", REFUSING.values(), ids=REFUSING.keys())
async def test_probes_are_exempt_below_the_root_path(layer: Any) -> None:
    # 404: the probe reached the app, which has no such route.
    assert await status(layer, "/svc/health", "/svc") == 404
    assert await status(layer, "/svc/health/live", "/svc") == 404
    assert await status(layer, "/svc/healthz", "/svc") in {400, 403}
    # The routes read `/svchealth` whole: so do the layers.
    assert await status(layer, "/svchealth", "/svc") in {400, 403}
