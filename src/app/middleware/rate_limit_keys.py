"""Whose quota a request uses: the user of a valid access token, or the client address."""

from starlette.types import Scope

from app.core.config import Settings
from app.core.security import InvalidTokenError, decode_access_token


class ClientKey:
    """Name whose quota a request uses: `user:<sub>` or `ip:<client host>`.

    A valid access token is decoded (signature and claims, no database). An `X-API-Key` cannot
    be checked without the database, so it gets no quota of its own: keyed by its text, random
    keys would each open a fresh quota. Requests with one use the client address.
    """

    def __init__(self, settings: Settings | None) -> None:
        self.settings = settings

    def __call__(self, scope: Scope) -> str:
        authorization = None
        for name, value in scope["headers"]:
            if name == b"x-api-key" and value:
                return client_ip_key(scope)
            if name == b"authorization":
                authorization = value
        if authorization is not None and self.settings is not None:
            scheme, _, token = authorization.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token:
                try:
                    subject = decode_access_token(token.strip(), settings=self.settings)["sub"]
                except InvalidTokenError:
                    subject = None
                if isinstance(subject, str) and subject:
                    return "user:" + subject
        return client_ip_key(scope)


def client_ip_key(scope: Scope) -> str:
    """Return `ip:<client host>` as the server (or a proxy-headers layer) set it."""
    client = scope.get("client")
    return "ip:" + (client[0] if client else "unknown")
