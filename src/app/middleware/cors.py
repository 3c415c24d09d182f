"""CORS: Starlette's layer, whose preflight refusals are problems like every other error."""

from collections.abc import Sequence
from http import HTTPStatus

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.errors import CorsRefused
from app.core.problems import ProblemRenderer

PREFLIGHT_METHOD = "access-control-request-method"
# What a preflight's answer depends on: a cache must key it by each of them.
PREFLIGHT_VARY = (
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
    "Access-Control-Request-Private-Network"
)


class CorsMiddleware(CORSMiddleware):
    """Answer CORS as Starlette does; a refused preflight is a 400 `cors_refused` problem.

    Starlette refuses with `text/plain` and grants the methods and headers all the same; the
    problem names what was refused and grants nothing. Only preflights (an `OPTIONS` with
    `Origin` and `Access-Control-Request-Method`) are looked at here; every other request
    passes to Starlette's layer unchanged.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        renderer: ProblemRenderer,
        allow_origins: Sequence[str],
        allow_methods: Sequence[str],
        allow_headers: Sequence[str],
        allow_credentials: bool,
        expose_headers: Sequence[str],
    ) -> None:
        super().__init__(
            app,
            allow_origins=allow_origins,
            allow_methods=allow_methods,
            allow_headers=allow_headers,
            allow_credentials=allow_credentials,
            expose_headers=expose_headers,
        )
        self.renderer = renderer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and PREFLIGHT_METHOD in headers:
                response = self.preflight_response(request_headers=headers)
                if response.status_code != HTTPStatus.OK:
                    refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
                    error = CorsRefused(f"This cross-origin request is not allowed: {refused}.")
                    response = self.renderer.from_exception(scope, error)
                    response.headers["Vary"] = PREFLIGHT_VARY
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
