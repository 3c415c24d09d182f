"""The verifier's account round trip: register, log in, read, refresh, log out, delete.

A throwaway account (`verify-<random>@example.com`, a random password) goes through the public
API. Registration needs no email verification before login (`email_verified_at` stays empty),
so the account works at once; it is deleted at the end (`DELETE /users/me`) whatever failed in
between. The trip spends 6 requests of the client's auth quota (`RATE_LIMIT_AUTH_PER_MINUTE`,
default 10): register, login, refresh, logout, a refused refresh, and the login that deletes.
"""

import secrets
from dataclasses import dataclass
from functools import partial

import httpx2

from app.api import API_PREFIX
from app.cli.verify_checks import (
    CheckSkipped,
    Verifier,
    expect,
    expect_problem,
    expect_status,
    json_body,
)

USERS = f"{API_PREFIX}/users"
AUTH = f"{API_PREFIX}/auth"


@dataclass
class Account:
    """The throwaway account and the tokens of its current session."""

    email: str
    password: str
    access_token: str = ""
    refresh_token: str = ""
    created: bool = False

    @classmethod
    def random(cls) -> "Account":
        """A fresh address and password nobody else knows."""
        return cls(f"verify-{secrets.token_hex(8)}@example.com", secrets.token_urlsafe(24))

    @property
    def bearer(self) -> dict[str, str]:
        """The Authorization header of the current session."""
        return {"Authorization": f"Bearer {self.access_token}"}


async def register(client: httpx2.AsyncClient, account: Account) -> str:
    """`POST /users` creates the account and never shows a password back."""
    body = {"email": account.email, "password": account.password, "full_name": "verify"}
    response = await client.post(USERS, json=body)
    if response.status_code in {404, 405}:
        raise CheckSkipped("no local registration (AUTH_PROVIDER=oidc?)")
    expect_status(response, 201)
    account.created = True
    user = json_body(response)
    expect(user.get("email") == account.email, f"registered as {user.get('email')!r}")
    leaked = [name for name in user if "password" in name]
    expect(not leaked, f"the user carries {', '.join(leaked)}")
    return f"201 {account.email}"


async def _log_in(client: httpx2.AsyncClient, account: Account) -> None:
    form = {"username": account.email, "password": account.password}
    response = await client.post(f"{AUTH}/login", data=form)
    expect_status(response, 200)
    tokens = json_body(response)
    expect(tokens.get("token_type", "").lower() == "bearer", "token_type is not bearer")
    account.access_token = tokens.get("access_token", "")
    account.refresh_token = tokens.get("refresh_token", "")
    expect(bool(account.access_token and account.refresh_token), "login returned no token pair")


async def login(client: httpx2.AsyncClient, account: Account) -> str:
    """`POST /auth/login` (OAuth2 password form) returns an access and a refresh token."""
    await _log_in(client, account)
    return "200, access and refresh token"


async def me(client: httpx2.AsyncClient, account: Account) -> str:
    """`GET /users/me` needs the token (401 with WWW-Authenticate) and returns the account."""
    anonymous = await client.get(f"{USERS}/me")
    expect_problem(anonymous, 401)
    challenge = anonymous.headers.get("www-authenticate", "")
    expect(challenge.lower().startswith("bearer"), f"401 challenge {challenge!r}")
    response = await client.get(f"{USERS}/me", headers=account.bearer)
    expect_status(response, 200)
    expect(json_body(response).get("email") == account.email, "/users/me is another account")
    return "401 without a token; 200 with it"


async def refresh(client: httpx2.AsyncClient, account: Account) -> str:
    """`POST /auth/refresh` rotates the refresh token; the new access token works."""
    old = account.refresh_token
    response = await client.post(f"{AUTH}/refresh", json={"refresh_token": old})
    expect_status(response, 200)
    tokens = json_body(response)
    account.access_token = tokens.get("access_token", "")
    account.refresh_token = tokens.get("refresh_token", "")
    expect(bool(account.refresh_token) and account.refresh_token != old, "not rotated")
    expect_status(await client.get(f"{USERS}/me", headers=account.bearer), 200)
    return "200, rotated; the new access token works"


async def logout(client: httpx2.AsyncClient, account: Account) -> str:
    """`POST /auth/logout` ends the session: its refresh token is refused afterwards."""
    body = {"refresh_token": account.refresh_token}
    expect_status(await client.post(f"{AUTH}/logout", json=body), 204)
    expect_problem(await client.post(f"{AUTH}/refresh", json=body), 401)
    return "204; the refresh token is refused (401)"


async def delete(client: httpx2.AsyncClient, account: Account) -> str:
    """The account is removed with a session of its own and its password (`DELETE /users/me`).

    The password is the proof a deletion needs however short the server's FRESH_LOGIN_SECONDS.
    """
    await _log_in(client, account)
    proof = {"current_password": account.password}
    response = await client.request("DELETE", f"{USERS}/me", json=proof, headers=account.bearer)
    expect_status(response, 204)
    return f"{account.email} deleted"


STEPS = (
    ("account.register", register),
    ("account.login", login),
    ("account.me", me),
    ("account.refresh", refresh),
    ("account.logout", logout),
)


async def round_trip(verifier: Verifier) -> None:
    """Run every step in order (the rest skip after a failure), then always clean up."""
    account = Account.random()
    going = True
    for name, step in STEPS:
        if going:
            going = await verifier.check(name, partial(step, verifier.client, account))
        else:
            verifier.skip(name, "an earlier step did not pass")
    if account.created:
        await verifier.check("account.delete", partial(delete, verifier.client, account))
    else:
        verifier.skip("account.delete", "no account was created")
