"""Request deadlines: stopped requests answer 503 (504 upstream), routes set their own."""

import asyncio
import json

import pytest
from fastapi import BackgroundTasks, FastAPI
from httpx2 import ASGITransport, AsyncClient
from starlette.middleware import Middleware
from starlette.types import Message

from app.core.deadline import current_deadline, request_timeout, upstream_call
from app.middleware.deadline import DeadlineMiddleware
from app.middleware.server_errors import ServerErrorMiddleware
from tests.harness import assert_problem, log_lines
from tests.middleware.apps import RENDERER

pytestmark = pytest.mark.anyio

SECONDS = 0.2
CLEAN_UP_SECONDS = 1.0


def deadline_app() -> tuple[FastAPI, list[str]]:
    events: list[str] = []
    app = FastAPI(
        middleware=[
            Middleware(ServerErrorMiddleware, renderer=RENDERER),
            Middleware(DeadlineMiddleware, seconds=SECONDS, renderer=RENDERER),
        ]
    )

    @app.get("/sleep/{seconds}")
    async def sleep(seconds: float) -> dict[str, float]:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        deadline = current_deadline()
        return {"remaining": deadline.remaining() if deadline else -1.0}

    @app.get("/upstream")
    async def upstream() -> None:
        with upstream_call():
            await asyncio.sleep(5)

    @app.get("/slow-export", dependencies=[request_timeout(1.0)])
    async def slow_export() -> dict[str, str]:
        await asyncio.sleep(2 * SECONDS)
        return {"export": "done"}

    @app.get("/own-timeout")
    async def own_timeout() -> None:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(1)

    @app.get("/slow-clean-up")
    async def slow_clean_up() -> None:
        try:
            await asyncio.sleep(5)
        finally:  # closing a connection to a database that stopped answering, say
            await asyncio.shield(asyncio.sleep(CLEAN_UP_SECONDS))
            events.append("cleaned up")

    @app.get("/answers-anyway")
    async def answers_anyway() -> dict[str, str]:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:  # swallowed: what it sends after the deadline is dropped
            await asyncio.sleep(SECONDS / 2)
        return {"late": "answer"}

    @app.get("/fails")
    async def fails() -> None:
        raise RuntimeError("a bug")

    @app.get("/background")
    async def background(tasks: BackgroundTasks) -> dict[str, str]:
        async def later() -> None:
            await asyncio.sleep(2 * SECONDS)
            events.append("background finished")

        tasks.add_task(later)
        return {"queued": "yes"}

    return app, events


def client_of(app: FastAPI) -> AsyncClient:
    return AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver")


async def test_a_request_past_its_deadline_is_stopped_with_a_503() -> None:
    app, events = deadline_app()
    with log_lines() as logs:
        async with client_of(app) as client:
            response = await client.get("/sleep/5")
    problem = assert_problem(response, 503, "deadline_exceeded")
    assert response.headers["retry-after"] == "1"
    assert "0.2 seconds" in problem["detail"]
    assert events == ["cancelled"]  # the work was stopped, not left running
    [warning] = logs.events("deadline_exceeded")
    assert warning["upstream"] is False


async def test_a_request_within_its_deadline_sees_the_time_left() -> None:
    app, _ = deadline_app()
    async with client_of(app) as client:
        response = await client.get("/sleep/0")
    assert response.status_code == 200
    assert 0 < response.json()["remaining"] <= SECONDS


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/upstream", 504, "upstream_timeout"),  # waiting on another service
        ("/slow-export", 200, None),  # a route with a longer deadline of its own
        ("/own-timeout", 500, "internal_error"),  # the app's own timeout is not the deadline
    ],
)
async def test_what_a_request_past_the_default_deadline_answers(
    path: str, status: int, code: str | None
) -> None:
    app, _ = deadline_app()
    async with client_of(app) as client:
        response = await client.get(path)
    if code is None:
        assert (response.status_code, response.json()) == (200, {"export": "done"})
    else:
        assert_problem(response, status, code)


async def call(app: FastAPI, path: str) -> list[tuple[float, Message]]:
    """Call `app` as the server would; return what it sent, each with when, and when it ended."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent: list[tuple[float, Message]] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append((loop.time() - started, message))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    sent.append((loop.time() - started, {"type": "app.returned"}))
    return sent


async def test_the_answer_is_sent_at_the_deadline_while_a_slow_clean_up_goes_on() -> None:
    app, events = deadline_app()
    sent = await call(app, "/slow-clean-up")
    (start_at, start), (body_at, body), (returned_at, _) = sent
    assert start["status"] == 503
    assert json.loads(body["body"])["code"] == "deadline_exceeded"
    assert SECONDS <= start_at <= body_at < SECONDS + CLEAN_UP_SECONDS / 2
    assert returned_at >= SECONDS + CLEAN_UP_SECONDS  # the clean-up was not cut short
    assert events == ["cleaned up"]


async def test_what_a_stopped_request_sends_after_the_deadline_is_dropped() -> None:
    app, _ = deadline_app()
    sent = await call(app, "/answers-anyway")
    messages = [message for _, message in sent]
    assert [m["type"] for m in messages] == [
        "http.response.start",
        "http.response.body",
        "app.returned",
    ]
    assert messages[0]["status"] == 503


@pytest.mark.parametrize("path", ["/fails", "/sleep/0", "/own-timeout"])
async def test_a_finished_request_leaves_no_timer_behind(path: str) -> None:
    app, _ = deadline_app()
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    try:
        async with client_of(app) as client:
            await client.get(path)
        await asyncio.sleep(SECONDS * 1.5)  # past the deadline the request had
    finally:
        loop.set_exception_handler(None)
    assert errors == []


async def test_background_tasks_run_after_the_response_without_the_deadline() -> None:
    app, events = deadline_app()
    async with client_of(app) as client:
        response = await client.get("/background")
    assert response.json() == {"queued": "yes"}
    assert events == ["background finished"]


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="more than zero"):
        DeadlineMiddleware(FastAPI(), seconds=0, renderer=RENDERER)
    with pytest.raises(ValueError, match="more than zero"):
        request_timeout(0)
