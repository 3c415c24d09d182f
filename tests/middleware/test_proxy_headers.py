import pytest
from httpx2 import ASGITransport, AsyncClient
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from app.middleware.proxy_headers import ProxyHeadersMiddleware, parse_address
from tests.middleware.apps import nothing

pytestmark = pytest.mark.anyio

LOOPBACK = ["127.0.0.1", "::1"]


async def echo_client(request: Request) -> Response:
    client = request.scope["client"]
    return JSONResponse({"client": client[0] if client else None, "scheme": request.url.scheme})


def client(
    *headers: tuple[str, str],
    peer: str = "127.0.0.1",
    trusted: list[str] | None = None,
    installed: bool = True,
) -> AsyncClient:
    middleware = (
        [Middleware(ProxyHeadersMiddleware, trusted_proxies=trusted or LOOPBACK)]
        if installed
        else []
    )
    app = Starlette(routes=[Route("/", echo_client)], middleware=middleware)
    return AsyncClient(
        transport=ASGITransport(app=app, client=(peer, 4321)),
        base_url="http://testserver",
        headers=list(headers),
    )


async def seen(
    *headers: tuple[str, str],
    peer: str = "127.0.0.1",
    trusted: list[str] | None = None,
    installed: bool = True,
) -> dict[str, str]:
    async with client(*headers, peer=peer, trusted=trusted, installed=installed) as c:
        response = await c.get("/")
    assert response.status_code == 200
    result: dict[str, str] = response.json()
    return result


def xff(value: str) -> tuple[str, str]:
    return ("X-Forwarded-For", value)


def proto(value: str) -> tuple[str, str]:
    return ("X-Forwarded-Proto", value)


async def test_a_trusted_peer_forwards_the_client_address() -> None:
    assert (await seen(xff("203.0.113.7")))["client"] == "203.0.113.7"


async def test_without_the_header_a_trusted_peer_stays_the_client() -> None:
    assert await seen() == {"client": "127.0.0.1", "scheme": "http"}


@pytest.mark.parametrize(
    ("chain", "expected"),
    [
        # Proxies append on the right; the right-most untrusted address is the client.
        ("198.51.100.1, 203.0.113.7, 127.0.0.1", "203.0.113.7"),
        # Whatever the client wrote to the left of itself is ignored.
        ("6.6.6.6, 203.0.113.7", "203.0.113.7"),
        # Every hop trusted: the left-most is as far back as anyone can vouch.
        ("127.0.0.1, ::1, 127.0.0.1", "127.0.0.1"),
        ("::1, 127.0.0.1", "::1"),
        # Ports and brackets as proxies write them.
        ("203.0.113.7:51000", "203.0.113.7"),
        ("[2001:db8::7]:443, 127.0.0.1", "2001:db8::7"),
    ],
)
async def test_chains_are_read_from_the_right(chain: str, expected: str) -> None:
    assert (await seen(xff(chain)))["client"] == expected


async def test_several_headers_are_joined_in_order() -> None:
    headers = (xff("6.6.6.6, 203.0.113.7"), xff("127.0.0.1"))
    assert (await seen(*headers))["client"] == "203.0.113.7"


async def test_a_spoofed_header_from_an_untrusted_peer_changes_nothing() -> None:
    result = await seen(xff("1.1.1.1"), proto("https"), peer="198.51.100.23")
    assert result == {"client": "198.51.100.23", "scheme": "http"}


async def test_cidr_ranges_are_trusted_as_a_whole() -> None:
    trusted = ["10.0.0.0/8", "192.168.0.0/16"]
    chain = xff("203.0.113.7, 192.168.4.4, 10.1.2.3")
    assert (await seen(chain, peer="10.9.9.9", trusted=trusted))["client"] == "203.0.113.7"
    assert (await seen(chain, peer="11.0.0.1", trusted=trusted))["client"] == "11.0.0.1"


async def test_ipv6_peers_and_ranges() -> None:
    trusted = ["2001:db8:100::/48"]
    chain = xff("2001:db8::7, 2001:db8:100::5")
    assert (await seen(chain, peer="2001:db8:100::1", trusted=trusted))["client"] == "2001:db8::7"
    assert (await seen(chain, peer="2001:db8:200::1", trusted=trusted))["client"] == (
        "2001:db8:200::1"
    )


async def test_an_ipv4_mapped_peer_matches_its_ipv4_range() -> None:
    result = await seen(xff("203.0.113.7"), peer="::ffff:10.0.0.5", trusted=["10.0.0.0/8"])
    assert result["client"] == "203.0.113.7"


@pytest.mark.parametrize(
    ("chain", "expected"),
    [
        ("garbage", "127.0.0.1"),
        ("unknown, 203.0.113.7", "203.0.113.7"),
        # The walk stops at the forged entry, at the last address a proxy vouched for.
        ("203.0.113.7, <script>, ::1", "::1"),
        ("203.0.113.7, 300.1.1.1", "127.0.0.1"),
        ("203.0.113.7:99999", "127.0.0.1"),
        ("[2001:db8::7", "127.0.0.1"),
        ("203.0.113.7,", "127.0.0.1"),
        ("", "127.0.0.1"),
        (" , , ", "127.0.0.1"),
    ],
)
async def test_garbage_never_becomes_the_client(chain: str, expected: str) -> None:
    assert (await seen(xff(chain)))["client"] == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ((proto("https"),), "https"),
        ((proto("HTTPS "),), "https"),
        ((proto("http"),), "http"),
        ((proto("ftp"),), "http"),
        ((proto("wss"),), "http"),
        ((proto("javascript"),), "http"),
        # One item per hop: the chosen client's hop decides.
        ((xff("203.0.113.7, 127.0.0.1"), proto("https, http")), "https"),
        ((xff("203.0.113.7, 127.0.0.1"), proto("https"), proto("http")), "https"),
        # Lists that do not line up: the right-most, set by our own proxy.
        ((xff("203.0.113.7, 127.0.0.1"), proto("http, http, https")), "https"),
        ((xff("203.0.113.7"), proto("http, https")), "https"),
    ],
)
async def test_forwarded_proto(headers: tuple[tuple[str, str], ...], expected: str) -> None:
    assert (await seen(*headers))["scheme"] == expected


async def test_not_installed_means_headers_are_ignored() -> None:
    result = await seen(xff("203.0.113.7"), proto("https"), installed=False)
    assert result == {"client": "127.0.0.1", "scheme": "http"}


async def call(scope: Scope) -> Scope:
    """Run the middleware on a raw scope and return the scope the app received."""
    received: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        received.append(dict(scope))

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent")

    await ProxyHeadersMiddleware(inner, trusted_proxies=LOOPBACK)(scope, receive, send)
    return received[0]


@pytest.mark.parametrize(("forwarded", "expected"), [("https", "wss"), ("ws", "ws"), ("ftp", "ws")])
async def test_websocket_schemes(forwarded: str, expected: str) -> None:
    scope = await call(
        {
            "type": "websocket",
            "scheme": "ws",
            "client": ("127.0.0.1", 1),
            "headers": [(b"x-forwarded-proto", forwarded.encode()), (b"x-forwarded-for", b"::2")],
        }
    )
    assert scope["scheme"] == expected
    assert scope["client"] == ("::2", 0)


async def test_a_scope_without_client_passes_unchanged() -> None:
    scope = await call({"type": "http", "scheme": "http", "client": None, "headers": []})
    assert scope["client"] is None


async def test_lifespan_passes_through() -> None:
    scope = await call({"type": "lifespan"})
    assert scope == {"type": "lifespan"}


@pytest.mark.parametrize(
    "trusted",
    [[], ["localhost"], ["10.0.0.1/8"], ["10.0.0.0/33"], ["*"], ["127.0.0.1", "nope"]],
)
def test_bad_configuration_is_refused(trusted: list[str]) -> None:
    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        ProxyHeadersMiddleware(nothing, trusted_proxies=trusted)


def test_a_single_string_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        ProxyHeadersMiddleware(nothing, trusted_proxies="127.0.0.1")


async def test_a_flood_of_distinct_addresses_is_resolved_right_with_a_bounded_cache() -> None:
    # Parsed addresses are cached (clients repeat): a client writing a new address into every
    # request must neither grow that cache without bound nor be served a stale answer.
    limit = parse_address.cache_info().maxsize
    assert limit is not None
    middleware = [Middleware(ProxyHeadersMiddleware, trusted_proxies=["127.0.0.1", "10.0.0.0/8"])]
    app = Starlette(routes=[Route("/", echo_client)], middleware=middleware)
    transport = ASGITransport(app=app, client=("127.0.0.1", 4321))
    async with AsyncClient(transport=transport, base_url="http://testserver") as c:
        for n in range(limit + 500):
            address = f"198.18.{n // 250}.{n % 250 + 1}"
            chain = f"{address}, 10.{n % 200}.0.1"
            response = await c.get("/", headers=[xff(chain)])
            assert response.json()["client"] == address
    assert parse_address.cache_info().currsize <= limit
    # The same strings still parse as they did: a cached answer is the uncached one.
    for value in ("198.18.0.1", "[::1]:80", "10.0.0.1:8080", "not-an-ip", "01.2.3.4"):
        assert parse_address(value) == parse_address.__wrapped__(value)
