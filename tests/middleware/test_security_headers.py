from html.parser import HTMLParser
from typing import Any

import pytest
from httpx2 import ASGITransport, AsyncClient
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api import ROUTE_PATHS
from app.core.problems import ProblemRenderer
from app.main import create_app
from app.middleware.security_headers import DOCS_CSP, SecurityHeadersMiddleware
from app.middleware.server_errors import ServerErrorMiddleware
from app.pipeline import security_headers_options
from tests.harness import PRODUCTION, STRONG_SECRET, make_settings
from tests.middleware.apps import fail

pytestmark = pytest.mark.anyio

API_CSP = "default-src 'none'; frame-ancestors 'none'"
# What the app passes: its API root and its docs pages.
DEFAULTS: dict[str, Any] = {"no_store_prefixes": ("/api/",), "docs_paths": ("/docs", "/redoc")}
HSTS = "max-age=31536000; includeSubDomains"
HARDENING = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "strict-origin-when-cross-origin",
    "cross-origin-opener-policy": "same-origin",
}


async def ok(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def own_headers(request: Request) -> Response:
    return PlainTextResponse(
        "framed",
        headers={
            "X-Frame-Options": "SAMEORIGIN",
            "Content-Security-Policy": "default-src 'self'",
            "Cache-Control": "public, max-age=60",
            "Strict-Transport-Security": "max-age=60",
        },
    )


class ForwardedProtoMiddleware:
    """Stands in for a proxy-headers layer: rewrites the scheme in the shared scope dict."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["scheme"] = "https"
        await self.app(scope, receive, send)


def client(
    *inner: Middleware, base_url: str = "http://testserver", root_path: str = "", **options: Any
) -> AsyncClient:
    app = Starlette(
        routes=[
            Route("/page", ok),
            Route("/docs", ok),
            Route("/redoc", ok),
            Route("/api/v1/items", ok),
            Route("/api/v1/own", own_headers),
            Route("/own", own_headers),
            Route("/fail", fail),
        ],
        middleware=[
            Middleware(SecurityHeadersMiddleware, **{**DEFAULTS, **options}),
            *inner,
        ],
    )
    transport = ASGITransport(app=app, root_path=root_path)
    return AsyncClient(transport=transport, base_url=base_url)


async def test_every_response_gets_the_hardening_headers() -> None:
    response = await client(csp=API_CSP).get("/page")
    for name, value in HARDENING.items():
        assert response.headers[name] == value
    assert "camera=()" in response.headers["permissions-policy"]
    assert response.headers["content-security-policy"] == API_CSP
    assert "cache-control" not in response.headers


async def test_headers_a_route_set_are_kept() -> None:
    https = client(csp=API_CSP, hsts=True, base_url="https://testserver")
    for path in ("/own", "/api/v1/own"):
        response = await https.get(path)
        assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
        assert response.headers.get_list("content-security-policy") == ["default-src 'self'"]
        assert response.headers.get_list("cache-control") == ["public, max-age=60"]
        assert response.headers.get_list("strict-transport-security") == ["max-age=60"]
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_no_store_only_on_api_responses() -> None:
    app = client()
    assert (await app.get("/api/v1/items")).headers["cache-control"] == "no-store"
    assert (await app.get("/api/v1/missing")).headers["cache-control"] == "no-store"
    assert "cache-control" not in (await app.get("/page")).headers
    assert "cache-control" not in (await app.get("/api")).headers


async def test_a_custom_api_prefix() -> None:
    app = client(no_store_prefixes=("/v2/",))
    assert (await app.get("/v2/anything")).headers["cache-control"] == "no-store"
    assert "cache-control" not in (await app.get("/api/v1/items")).headers


@pytest.mark.parametrize(
    ("hsts", "base_url", "expected"),
    [
        (True, "https://testserver", HSTS),
        (True, "http://testserver", None),
        (False, "https://testserver", None),
    ],
)
async def test_hsts_only_when_enabled_over_https(
    hsts: bool, base_url: str, expected: str | None
) -> None:
    response = await client(hsts=hsts, base_url=base_url).get("/page")
    assert response.headers.get("strict-transport-security") == expected


async def test_hsts_reads_the_scheme_a_proxy_layer_resolved_inside() -> None:
    app = client(Middleware(ForwardedProtoMiddleware), hsts=True)
    response = await app.get("/page")
    assert response.headers["strict-transport-security"] == HSTS


async def test_hsts_max_age_is_configurable() -> None:
    response = await client(hsts=True, hsts_max_age=600, base_url="https://testserver").get("/page")
    assert response.headers["strict-transport-security"] == "max-age=600; includeSubDomains"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (PRODUCTION, True),
        (
            {**PRODUCTION, "SECURITY_HSTS_ENABLED": False},
            False,
        ),
        ({"ENVIRONMENT": "staging", "JWT_SECRET": STRONG_SECRET}, False),
        ({"ENVIRONMENT": "test"}, False),
    ],
)
def test_settings_turn_hsts_on_only_in_production(
    overrides: dict[str, Any], expected: bool
) -> None:
    assert (
        security_headers_options(make_settings(**overrides), paths=ROUTE_PATHS)["hsts"] is expected
    )


async def test_docs_pages_get_the_docs_policy_and_others_the_api_policy() -> None:
    app = client(csp=API_CSP)
    for path in ("/docs", "/redoc"):
        assert (await app.get(path)).headers["content-security-policy"] == DOCS_CSP
    for path in ("/page", "/api/v1/items", "/docs/extra"):
        assert (await app.get(path)).headers["content-security-policy"] == API_CSP


async def test_docs_paths_are_matched_below_the_root_path() -> None:
    app = client(csp=API_CSP, root_path="/service")
    assert (await app.get("/service/docs")).headers["content-security-policy"] == DOCS_CSP
    response = await app.get("/service/api/v1/items")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-security-policy"] == API_CSP


@pytest.mark.parametrize("root_path", ["/ap", "/api/v"], ids=["prefix-of-api", "inside-api"])
async def test_a_root_path_is_cut_only_where_the_routes_cut_it(root_path: str) -> None:
    # The router reads `/api/v1/items` when the path does not continue the root path with
    # '/': so must the layer, or an API answer goes out without no-store.
    app = client(csp=API_CSP, root_path=root_path)
    response = await app.get("/api/v1/items")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"


async def test_settings_choose_the_policies() -> None:
    options = security_headers_options(
        make_settings(SECURITY_CSP="default-src 'self'"), paths=ROUTE_PATHS
    )
    app = client(**options)
    assert (await app.get("/page")).headers["content-security-policy"] == "default-src 'self'"
    assert (await app.get("/docs")).headers["content-security-policy"] == DOCS_CSP


async def test_csp_disabled_sends_no_policy() -> None:
    app = client(
        **security_headers_options(make_settings(SECURITY_CSP_ENABLED=False), paths=ROUTE_PATHS)
    )
    for path in ("/page", "/docs", "/api/v1/items"):
        response = await app.get(path)
        assert "content-security-policy" not in response.headers
        assert response.headers["x-frame-options"] == "DENY"


async def test_docs_are_not_special_when_docs_are_off() -> None:
    settings = make_settings(**PRODUCTION)
    response = await client(**security_headers_options(settings, paths=ROUTE_PATHS)).get("/docs")
    assert response.headers["content-security-policy"] == settings.http.csp


async def test_server_error_problems_inside_get_the_headers() -> None:
    renderer = ProblemRenderer("https://errors.test/")
    app = client(Middleware(ServerErrorMiddleware, renderer=renderer), csp=API_CSP)
    response = await app.get("/fail")
    assert response.status_code == 500
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == API_CSP


@pytest.mark.parametrize("scope_type", ["lifespan", "websocket"])
async def test_non_http_scopes_pass_through(scope_type: str) -> None:
    seen: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])
        await send({"type": "marker"})

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    middleware = SecurityHeadersMiddleware(inner, csp=API_CSP, no_store_prefixes=("/api/",))
    await middleware({"type": scope_type, "path": "/api/ws"}, None, send)  # type: ignore[arg-type]
    assert seen == [scope_type]
    assert sent == [{"type": "marker"}]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"hsts_max_age": -1}, "must not be negative"),
        ({"no_store_prefixes": ("api/",)}, "must start with '/'"),
        ({"docs_paths": ["docs"]}, "must start with '/'"),
        ({"csp": ""}, "Header values"),
        ({"csp": "default-src 'none'\r\nSet-Cookie: x=1"}, "Header values"),
        ({"docs_csp": "img-src \u2603"}, "Header values"),
        ({"permissions_policy": "camera=()\n"}, "Header values"),
    ],
)
def test_bad_options_are_refused_at_construction(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SecurityHeadersMiddleware(Starlette(), **{**DEFAULTS, **options})


class ScriptCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._open: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self._open = dict(attrs)
            self.scripts.append((self._open, ""))

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._open = None


def scripts_of(html: str) -> list[tuple[dict[str, str | None], str]]:
    parser = ScriptCollector()
    parser.feed(html)
    return parser.scripts


async def test_the_real_docs_pages_run_no_inline_script_under_the_docs_policy() -> None:
    settings = make_settings()
    app = SecurityHeadersMiddleware(
        create_app(settings), **security_headers_options(settings, paths=ROUTE_PATHS)
    )
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as c:
        for page in ("/docs", "/redoc"):
            response = await c.get(page)
            assert response.headers["content-security-policy"] == DOCS_CSP
            scripts = scripts_of(response.text)
            assert scripts
            for attrs, text in scripts:
                executable = attrs.get("type") != "application/json"
                assert not executable or (attrs.get("src") and not text.strip()), (page, attrs)
        init = await c.get("/static/docs/swagger-init.js")
    assert init.status_code == 200
    assert "SwaggerUIBundle(" in init.text
