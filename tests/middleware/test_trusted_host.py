import pytest
from httpx2 import ASGITransport, AsyncClient
from starlette.middleware import Middleware
from starlette.types import Receive, Scope, Send

from app.middleware.trusted_host import TrustedHostMiddleware
from tests.harness import PROBLEM
from tests.middleware.apps import RENDERER, inline_app

pytestmark = pytest.mark.anyio


def client(*allowed: str, host: str) -> AsyncClient:
    app = inline_app(
        Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed), renderer=RENDERER)
    )
    return AsyncClient(transport=ASGITransport(app=app), base_url=f"http://{host}")


@pytest.mark.parametrize(
    ("allowed", "host"),
    [
        (("*",), "anything.test"),
        (("api.example.com",), "api.example.com"),
        (("api.example.com",), "API.example.com:8443"),
        (("*.example.com",), "eu.api.example.com"),
        (("[::1]",), "[::1]:8000"),
    ],
)
async def test_allowed_hosts_pass(allowed: tuple[str, ...], host: str) -> None:
    response = await client(*allowed, host=host).get("/items/1")
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("allowed", "host"),
    [
        (("api.example.com",), "evil.test"),
        (("*.example.com",), "example.com.evil.test"),
        (("*.example.com",), "badexample.com"),
    ],
)
async def test_other_hosts_get_a_400_problem(allowed: tuple[str, ...], host: str) -> None:
    response = await client(*allowed, host=host).get("/items/1")
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "invalid_host"


@pytest.mark.parametrize("pattern", ["api.*.com", "*example.com", "**.example.com"])
def test_bad_wildcards_are_refused_at_construction(pattern: str) -> None:
    with pytest.raises(ValueError, match="Domain wildcard"):
        TrustedHostMiddleware(inline_app(), allowed_hosts=[pattern], renderer=RENDERER)


async def status_for(headers: list[tuple[bytes, bytes]], allowed: str) -> object:
    """The status a request with exactly these headers gets (no client adds a Host)."""
    app = inline_app(Middleware(TrustedHostMiddleware, allowed_hosts=[allowed], renderer=RENDERER))
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/items/1", "headers": headers}
    await app({**scope, "query_string": b""}, receive, send)  # type: ignore[arg-type]
    return sent[0]["status"]


async def test_a_missing_host_header_is_refused() -> None:
    assert await status_for([], "api.example.com") == 400


async def test_lifespan_passes_through() -> None:
    seen: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    middleware = TrustedHostMiddleware(inner, allowed_hosts=["api.example.com"], renderer=RENDERER)
    await middleware({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan"]


@pytest.mark.parametrize("path", ["/health", "/health/live", "/metrics"])
async def test_exempt_paths_pass_any_host(path: str) -> None:
    """A kubelet probes `Host: <pod ip>:8000`; a probe must not depend on ALLOWED_HOSTS."""
    app = inline_app(
        Middleware(
            TrustedHostMiddleware,
            allowed_hosts=["api.example.com"],
            renderer=RENDERER,
            exempt=["/health", "/metrics"],
        )
    )
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://10.1.2.3:8000") as c:
        assert (await c.get(path)).status_code == 404  # reached the app, which has no such route
        # Only the listed paths and those below them: a prefix of a name is not below it.
        refused = await c.get("/healthcheck")
        assert refused.status_code == 400
        assert refused.headers["content-type"] == PROBLEM


def test_exempt_paths_must_be_absolute() -> None:
    with pytest.raises(ValueError, match="start with"):
        TrustedHostMiddleware(
            inline_app(), allowed_hosts=["api.example.com"], renderer=RENDERER, exempt=["health"]
        )


@pytest.mark.parametrize(
    "host",
    [
        "evil.com/.example.com",
        "evil.com#.example.com",
        "evil.com?.example.com",
        "evil.com@a.example.com",
        "evil com.example.com",
        "[evil.com/.example.com]",
        "[evil.com/.example.com]:443",
        "-bad.example.com",
        "a..example.com",
        ".example.com",
        "é.example.com",
        "a\x00.example.com",
    ],
)
async def test_a_malformed_host_matches_no_wildcard(host: str) -> None:
    """Only a host name (or an IP literal) can end like a subdomain of an allowed domain."""
    header = (b"host", host.encode("latin-1", "replace"))
    assert await status_for([header], "*.example.com") == 400
    assert await status_for([(b"host", b"a.example.com")], "*.example.com") == 200
