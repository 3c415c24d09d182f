"""Country blocking: clients whose address is in a blocked country get a 403 problem."""

import re
from collections.abc import Callable, Collection

from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.errors import CountryBlockedError
from app.core.problems import ProblemRenderer
from app.middleware.scope import PathSet

_COUNTRY = re.compile(r"[A-Z]{2}")  # ISO 3166 alpha-2, as MaxMind files write them


class CountryBlockMiddleware:
    """Refuse HTTP requests from blocked countries with 403 `country_blocked`.

    `country_of` maps the client address (as the server, or the proxy-headers layer before
    this one, resolved it) to an ISO country code, or None when unknown. A country is blocked
    when it is in `blocked`, or when `allowed` is not empty and it is not in `allowed`;
    addresses of no known country are blocked only with `block_unknown`. Paths in `exempt`
    (health probes) are never refused, so monitoring from anywhere keeps working.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        country_of: Callable[[str], str | None],
        renderer: ProblemRenderer,
        allowed: Collection[str] = (),
        blocked: Collection[str] = (),
        block_unknown: bool = False,
        exempt: Collection[str] = (),
    ) -> None:
        if not all(_COUNTRY.fullmatch(code) for code in (*allowed, *blocked)):
            raise ValueError("Countries must be ISO 3166 alpha-2 codes such as 'DE'.")
        self.app = app
        self.country_of = country_of
        self.renderer = renderer
        self.allowed = frozenset(allowed)
        self.blocked = frozenset(blocked)
        self.block_unknown = block_unknown
        self.exempt = PathSet(exempt)

    def refuses(self, address: str | None) -> bool:
        """Whether a client at `address` is refused."""
        country = self.country_of(address) if address else None
        if country is None:
            return self.block_unknown
        return country in self.blocked or bool(self.allowed and country not in self.allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt.covers(scope):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        if not self.refuses(client[0] if client else None):
            await self.app(scope, receive, send)
            return
        error = CountryBlockedError("This service is not available in your country.")
        await self.renderer.from_exception(scope, error)(scope, receive, send)
