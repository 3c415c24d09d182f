import pytest
from httpx2 import ASGITransport, AsyncClient
from starlette.middleware import Middleware
from starlette.types import Message

from app.core.config import Settings
from app.core.problems import ProblemRenderer
from app.middleware.server_errors import ServerErrorMiddleware
from tests.harness import PROBLEM, log_lines, started
from tests.middleware.apps import inline_app

pytestmark = pytest.mark.anyio


def client(expose: bool = False) -> AsyncClient:
    renderer = ProblemRenderer("https://errors.test/", expose_exceptions=expose)
    app = inline_app(Middleware(ServerErrorMiddleware, renderer=renderer))
    return AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver")


async def test_exception_becomes_a_problem_and_is_logged_once() -> None:
    with log_lines() as logs:
        response = await client().get("/fail")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "internal_error"
    assert "boom" not in response.text
    [logged] = logs.events("unhandled_exception")
    assert "RuntimeError: boom" in logged["exception"]


async def test_exception_text_is_shown_only_when_asked() -> None:
    response = await client(expose=True).get("/fail")
    assert response.json()["exception"] == "RuntimeError: boom"


async def test_exception_after_the_response_started_is_reraised() -> None:
    with log_lines() as logs, pytest.raises(RuntimeError, match="boom after start"):
        await client().get("/stream-fail")
    assert len(logs.events("exception_after_response_started")) == 1
    assert logs.events("unhandled_exception") == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("path", "content_type", "sent"),
    [
        ("/api/v1/users", "application/json", b'{"email": '),
        ("/api/v1/auth/login", "application/x-www-form-urlencoded", b"username=a%40b.c&pass"),
    ],
    ids=["json", "form"],
)
async def test_a_client_gone_mid_body_is_not_a_server_error(
    settings: Settings, path: str, content_type: str, sent: bytes
) -> None:
    """The client closed the connection before its body arrived: a 499 in the access log and
    the metrics, no traceback, no 500 (which alerts watch)."""
    messages: list[Message] = [
        {"type": "http.request", "body": sent, "more_body": True},
        {"type": "http.disconnect"},
    ]
    headers = [(b"content-type", content_type.encode()), (b"content-length", b"100")]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 5000), "server": ("testserver", 80), "state": {},
    }  # fmt: skip
    sent_back: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent_back.append(message)

    async with started(settings) as (app, _):
        with log_lines() as logs:
            await app(scope, receive, send)
    assert logs.events("unhandled_exception") == []
    [line] = [line for line in logs.events("request") if line["path"] == path]
    assert (line["status"], line["level"]) == (499, "info")
    assert sent_back[0]["status"] == 499
