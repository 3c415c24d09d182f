"""Security headers: browser hardening on every response, unless the response set its own."""

from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.middleware.scope import route_path

HSTS_MAX_AGE = 31_536_000  # one year
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=()"
)
# What Swagger UI and ReDoc need, checked in Chromium: our own scripts (no inline one), inline
# styles (both inject them; ReDoc fails without), `data:` images (icons in both), fetching the
# schema, and ReDoc's search index in a `blob:` worker. Neither loads fonts. ReDoc's footer logo
# from cdn.redoc.ly is blocked by design: the image hides itself and nothing leaves the machine.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; worker-src blob:; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
ENFORCE_PATH_PREFIX = "Paths and the API prefix must start with '/'."
ENFORCE_HEADER_VALUE = "Header values must be non-empty latin-1 text without control characters."
ENFORCE_MAX_AGE = "hsts_max_age must not be negative."

STS = b"strict-transport-security"
CSP = b"content-security-policy"
CACHE_CONTROL = b"cache-control"
NO_STORE = (CACHE_CONTROL, b"no-store")


def _header_value(value: str) -> bytes:
    if not value or any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):  # noqa: PLR2004
        raise ValueError(ENFORCE_HEADER_VALUE)
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(ENFORCE_HEADER_VALUE) from None


class SecurityHeadersMiddleware:
    """Add hardening headers on `http.response.start`; a header the app already set is kept.

    `csp` applies to every response but `docs_paths`, which get `docs_csp`; `None` sends none.
    `Cache-Control: no-store` goes on responses below `no_store_prefixes` (the API, whose
    answers carry tokens and personal data) unless the route set its own. HSTS is sent when
    `hsts` is on and the request is HTTPS, read when the response starts, so a proxy-headers
    layer inside this one has already resolved the scheme.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        hsts: bool = False,
        hsts_max_age: int = HSTS_MAX_AGE,
        csp: str | None = None,
        docs_csp: str | None = DOCS_CSP,
        docs_paths: Sequence[str] = (),
        no_store_prefixes: Sequence[str],
        permissions_policy: str = PERMISSIONS_POLICY,
        referrer_policy: str = "strict-origin-when-cross-origin",
    ) -> None:
        if hsts_max_age < 0:
            raise ValueError(ENFORCE_MAX_AGE)
        if not all(p.startswith("/") for p in (*no_store_prefixes, *docs_paths)):
            raise ValueError(ENFORCE_PATH_PREFIX)
        self.app = app
        self.no_store_prefixes = tuple(no_store_prefixes)
        self.docs_paths = frozenset(docs_paths)
        common = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", _header_value(referrer_policy)),
            (b"permissions-policy", _header_value(permissions_policy)),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        self.headers = (*common, *([(CSP, _header_value(csp))] if csp is not None else []))
        self.docs_headers = (
            *common,
            *([(CSP, _header_value(docs_csp))] if docs_csp is not None else []),
        )
        self.hsts = (STS, f"max-age={hsts_max_age}; includeSubDomains".encode()) if hsts else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        path = route_path(scope)
        extra = self.docs_headers if path in self.docs_paths else self.headers
        is_api = path.startswith(self.no_store_prefixes)

        async def send_with_security_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(header for header in extra if header[0] not in present)
                if is_api and CACHE_CONTROL not in present:
                    headers.append(NO_STORE)
                if self.hsts and scope.get("scheme") == "https" and STS not in present:
                    headers.append(self.hsts)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_security_headers)
