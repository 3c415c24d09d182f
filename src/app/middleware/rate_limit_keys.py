"""Whose quota a request uses: the user of a valid access token, or the client address."""

from collections.abc import Callable

from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers
from starlette.types import Scope

from app.core.clients import client_identity


class ClientKey:
    """Name whose quota a request uses: `user:<sub>` or `ip:<client>` (`client_ip_key`).

    `token_subject` returns the subject of a valid bearer token, or None; it checks signature
    and claims, no database. Without it (tokens this service cannot check), callers are keyed
    by address. An `X-API-Key` cannot be checked without the database, so it gets no quota of
    its own: keyed by its text, random keys would each open a fresh quota. Requests with one
    use the client address.

    The credential is read exactly as the routes' authentication reads it (the first of each
    header, an empty `X-API-Key` as none), so repeating a header cannot switch quotas.
    """

    def __init__(self, token_subject: Callable[[str], str | None] | None) -> None:
        self.token_subject = token_subject

    def __call__(self, scope: Scope) -> str:
        headers = Headers(scope=scope)
        if headers.get("x-api-key") or self.token_subject is None:
            return client_ip_key(scope)
        scheme, token = get_authorization_scheme_param(headers.get("authorization"))
        if scheme.lower() == "bearer" and token:
            subject = self.token_subject(token)
            if subject:
                return "user:" + subject
        return client_ip_key(scope)


def client_ip_key(scope: Scope) -> str:
    """Return `ip:<client>` as the server (or a proxy-headers layer) set it; IPv6 as its /64."""
    client = scope.get("client")
    return "ip:" + (client_identity(client[0]) if client else "unknown")
