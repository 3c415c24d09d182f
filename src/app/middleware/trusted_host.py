"""Trusted hosts: refuse requests whose `Host` is not in `ALLOWED_HOSTS` with a 400 problem."""

import ipaddress
import re
from collections.abc import Collection, Sequence

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.errors import InvalidHost
from app.core.problems import ProblemRenderer
from app.middleware.scope import PathSet

ENFORCE_DOMAIN_WILDCARD = "Domain wildcard patterns must be like '*.example.com'."


_MAX_PORT = 65535
# Dot-separated labels of letters, digits, hyphens (underscores too: container service names),
# none empty, none longer than 63, none starting or ending with a hyphen. What a wildcard's
# suffix match must see: `evil.com/.example.com` ends like a subdomain but is not a name.
_HOST_NAME = re.compile(
    r"(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
)


def _valid_port(port: str) -> bool:
    return port.isascii() and port.isdigit() and 0 < int(port) <= _MAX_PORT


def _host_of(scope: Scope) -> str | None:
    """The host name of the `Host` header; None when it is absent, or it or its port is not one."""
    host = Headers(scope=scope).get("host")
    if not host:
        return None
    if host.startswith("["):  # IPv6 literal, maybe with a port
        name, _, rest = host[1:].partition("]")
        port = rest.removeprefix(":") if rest.startswith(":") else None
        if rest and port is None:
            return None
    elif ":" in host:
        name, _, port = host.rpartition(":")
    else:
        name, port = host, None
    if port is not None and not _valid_port(port):
        return None
    name = name.lower()
    if host.startswith("["):
        return name if _is_ipv6(name) else None
    return name if name.isascii() and _HOST_NAME.fullmatch(name) else None


def _is_ipv6(name: str) -> bool:
    try:
        ipaddress.IPv6Address(name)
    except ValueError:
        return False
    return True


class TrustedHostMiddleware:
    """Allow only listed hosts; `*.example.com` allows any subdomain of example.com.

    Paths in `exempt` (and below them) pass whatever their `Host`: orchestrators probe a pod by
    its address (a kubelet sends `Host: 10.1.2.3:8000`, a container health check `127.0.0.1`),
    and those paths build nothing from the host. The metrics path keeps its own IP/token gate.
    """

    def __init__(
        self,
        app: ASGIApp,
        allowed_hosts: Sequence[str],
        renderer: ProblemRenderer,
        exempt: Collection[str] = (),
    ) -> None:
        self.exempt = PathSet(exempt)
        for pattern in allowed_hosts:
            if "*" in pattern[1:] or (
                pattern.startswith("*") and pattern != "*" and not pattern.startswith("*.")
            ):
                raise ValueError(ENFORCE_DOMAIN_WILDCARD)
        self.app = app
        self.renderer = renderer
        self.allow_any = "*" in allowed_hosts
        # IPv6 literals are compared without their brackets, as `_host_of` returns them.
        self.exact = frozenset(
            p.strip("[]").lower() for p in allowed_hosts if not p.startswith("*")
        )
        self.suffixes = tuple(p[1:].lower() for p in allowed_hosts if p.startswith("*."))

    def is_allowed(self, host: str | None) -> bool:
        """Whether `host` matches an allowed name or wildcard."""
        if host is None:
            return False
        return host in self.exact or host.endswith(self.suffixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.allow_any or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if self.is_allowed(_host_of(scope)) or self.exempt.covers(scope):
            await self.app(scope, receive, send)
            return
        error = InvalidHost("The Host header does not name this service.")
        await self.renderer.from_exception(scope, error)(scope, receive, send)
