"""Whom a request counts against (app/middleware/rate_limit_keys.py): a verified user, or
the client's address.
"""

import functools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from starlette.types import Scope

from app.core.config import Settings
from app.core.security import token_subject
from app.middleware.rate_limit_keys import ClientKey
from tests.harness import make_settings
from tests.middleware.rate_limit_apps import CLIENT, OTHER_CLIENT, client, middleware, token

pytestmark = pytest.mark.anyio


def scope_with(*headers: tuple[bytes, bytes], client: tuple[str, int] | None = CLIENT) -> Scope:
    return {"type": "http", "headers": list(headers), "client": client}


def verifying(settings: Settings) -> ClientKey:
    """The key function the real app uses with local tokens."""
    return ClientKey(functools.partial(token_subject, auth=settings.auth))


def test_a_valid_access_token_is_keyed_by_its_user() -> None:
    settings = make_settings()
    user_id = uuid.uuid4()
    key = verifying(settings)(scope_with((b"authorization", token(settings, user_id))))
    assert key == f"user:{user_id}"


@pytest.mark.parametrize(
    "authorization",
    [
        b"Bearer not-a-jwt",
        b"Basic dXNlcjpwYXNz",
        b"Bearer ",
        b"bearer",
    ],
)
def test_unusable_credentials_fall_back_to_the_address(authorization: bytes) -> None:
    key = verifying(make_settings())(scope_with((b"authorization", authorization)))
    assert key == "ip:203.0.113.9"


def test_tokens_that_fail_verification_fall_back_to_the_address() -> None:
    settings = make_settings()
    other = make_settings(JWT_SECRET="another-secret-of-at-least-32-characters!!")
    expired = token(settings, uuid.uuid4(), issued=datetime.now(UTC) - timedelta(days=1))
    forged = token(other, uuid.uuid4())
    for authorization in (expired, forged):
        assert verifying(settings)(scope_with((b"authorization", authorization))) == (
            "ip:203.0.113.9"
        )


def test_tokens_are_not_decoded_without_settings() -> None:
    settings = make_settings()
    authorization = token(settings, uuid.uuid4())
    assert ClientKey(None)(scope_with((b"authorization", authorization))) == "ip:203.0.113.9"


def test_api_keys_cannot_open_quotas_of_their_own() -> None:
    # Unverifiable without the database: random keys must not each get a fresh quota.
    settings = make_settings()
    for api_key in (b"x", b"pfb_0123abcd_" + b"s" * 43):
        key = verifying(settings)(
            scope_with((b"authorization", token(settings, uuid.uuid4())), (b"x-api-key", api_key))
        )
        assert key == "ip:203.0.113.9"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/v1/items"), ("POST", "/api/v1/auth/login")],
    ids=["general", "auth"],
)
async def test_the_addresses_of_one_ipv6_network_share_one_quota(method: str, path: str) -> None:
    # A subscriber holds a whole /64 and may send each request from a fresh address in it.
    limited = middleware(per_minute=1, per_auth=1)
    first = ("2001:db8:1:2::1", 4711)
    async with client(limited, first) as c:
        assert (await c.request(method, path)).status_code == 200
    for address in ("2001:db8:1:2::2", "2001:db8:1:2:ffff:ffff:ffff:fffe"):
        async with client(limited, (address, 4711)) as c:
            assert (await c.request(method, path)).status_code == 429
    async with client(limited, ("2001:db8:1:3::1", 4711)) as c:
        assert (await c.request(method, path)).status_code == 200


async def test_ipv4_clients_on_a_dual_stack_socket_keep_quotas_of_their_own() -> None:
    limited = middleware(per_minute=1)
    async with client(limited, ("::ffff:203.0.113.9", 4711)) as c:
        assert (await c.get("/api/v1/items")).status_code == 200
    async with client(limited, ("::ffff:198.51.100.7", 4711)) as c:
        assert (await c.get("/api/v1/items")).status_code == 200
    async with client(limited, ("203.0.113.9", 4711)) as c:  # the same client, spelled as IPv4
        assert (await c.get("/api/v1/items")).status_code == 429


def test_a_request_without_a_client_address_shares_one_key() -> None:
    assert verifying(make_settings())(scope_with(client=None)) == "ip:unknown"


async def test_users_keep_their_quota_from_any_address() -> None:
    settings = make_settings()
    headers = {"Authorization": token(settings, uuid.uuid4()).decode()}
    limited = middleware(per_minute=2, key_func=verifying(settings))
    async with client(limited) as c:
        assert [(await c.get("/api/v1/items", headers=headers)).status_code for _ in range(2)] == [
            200,
            200,
        ]
        assert (await c.get("/api/v1/items")).status_code == 200  # the address: its own quota
    async with client(limited, OTHER_CLIENT) as c:
        assert (await c.get("/api/v1/items", headers=headers)).status_code == 429
