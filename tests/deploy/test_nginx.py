"""deploy/nginx.conf sends what the app's proxy-header handling reads, to several nodes."""

import re

import pytest
from starlette.types import Receive, Scope, Send

from app.core.settings_groups import HttpSettings
from app.core.settings_operations import ServerSettings
from app.middleware.proxy_headers import ProxyHeadersMiddleware
from tests.deploy.manifests import ROOT

pytestmark = pytest.mark.anyio

CONF = (ROOT / "deploy" / "nginx.conf").read_text()
DIRECTIVES = [line.split("#")[0].strip() for line in CONF.splitlines()]


def directive(name: str) -> list[str]:
    """The arguments of every `name ...;` directive."""
    return [
        line[len(name) :].strip().rstrip(";") for line in DIRECTIVES if line.startswith(name + " ")
    ]


def seconds(value: str) -> float:
    return float(value.removesuffix("s"))


def test_least_conn_upstream_of_several_nodes() -> None:
    upstream = re.search(r"upstream app \{(.*?)\}", CONF, re.DOTALL)
    assert upstream is not None
    body = upstream.group(1)
    assert re.search(r"^\s*least_conn;", body, re.MULTILINE)
    assert len(re.findall(r"^\s*server \S+:8000", body, re.MULTILINE)) >= 2
    assert directive("proxy_pass") == ["http://app"]


def test_forwarded_headers_are_the_ones_the_app_reads() -> None:
    headers = dict(item.split(None, 1) for item in directive("proxy_set_header"))
    # The middleware walks X-Forwarded-For from the right: nginx appends its peer there.
    assert headers["X-Forwarded-For"] == "$proxy_add_x_forwarded_for"
    assert headers["X-Forwarded-Proto"] == "$scheme"
    assert headers["Host"] == "$host"  # checked against ALLOWED_HOSTS
    assert headers["X-Request-ID"] == "$request_id_out"


async def test_the_app_resolves_the_client_nginx_reports() -> None:
    """A client forges X-Forwarded-For; nginx appends the real peer; the app takes the peer."""
    seen: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    middleware = ProxyHeadersMiddleware(inner, trusted_proxies=["10.0.0.5"])
    forged = "198.51.100.9"
    # What `$proxy_add_x_forwarded_for` and `$scheme` produce for that request.
    headers = [
        (b"x-forwarded-for", f"{forged}, 203.0.113.7".encode()),
        (b"x-forwarded-proto", b"https"),
    ]
    scope = {"type": "http", "client": ("10.0.0.5", 40000), "headers": headers, "scheme": "http"}
    await middleware(scope, None, None)  # type: ignore[arg-type]
    assert seen[0]["client"][0] == "203.0.113.7"
    assert seen[0]["scheme"] == "https"


def test_timeouts_and_body_limit_leave_the_answer_to_the_app() -> None:
    server = ServerSettings(_env_file=None)
    http = HttpSettings(_env_file=None)
    assert seconds(directive("proxy_read_timeout")[0]) > server.request_timeout_seconds
    [limit] = directive("client_max_body_size")
    assert int(limit.removesuffix("m")) * 1024 * 1024 > http.max_request_body_bytes


def test_slow_clients_are_bounded_before_the_app() -> None:
    server = ServerSettings(_env_file=None)
    assert seconds(directive("client_header_timeout")[0]) <= 10
    assert seconds(directive("client_body_timeout")[0]) <= server.request_body_timeout_seconds
    assert directive("large_client_header_buffers") == ["4 16k"]
    assert directive("proxy_request_buffering") == ["on"]


def test_only_idempotent_failures_are_retried_elsewhere() -> None:
    [retry] = directive("proxy_next_upstream")
    assert "non_idempotent" not in retry
    assert "http_503" in retry  # a draining or overloaded node
