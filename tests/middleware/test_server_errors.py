import pytest
from httpx2 import ASGITransport, AsyncClient
from starlette.middleware import Middleware

from app.core.problems import ProblemRenderer
from app.middleware.server_errors import ServerErrorMiddleware
from tests.harness import PROBLEM, log_lines
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
