"""Bodies are read in full, within a bound, before a request takes a slot or its deadline."""

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from starlette.types import Message, Receive, Scope, Send

from app.main import create_app
from app.middleware.body_read import BodyReadMiddleware
from tests.harness import make_settings
from tests.middleware.apps import RENDERER

pytestmark = pytest.mark.anyio

SECONDS = 0.2


def scope_of(method: str = "POST", path: str = "/", **headers: str) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


def chunks(*parts: bytes, then: Callable[[], Awaitable[Message]] | None = None) -> Receive:
    """A client sending `parts` as body chunks, then (if given) waiting on `then`."""
    queue = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1 or then is not None}
        for i, part in enumerate(parts)
    ]

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        assert then is not None
        return await then()

    return receive


async def stall() -> Message:
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")


class Echo:
    """An app that reads the whole body as a route would, and answers with its length."""

    def __init__(self) -> None:
        self.received: list[Message] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            self.received.append(message)
            if message["type"] != "http.request":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(len(body)).encode()})


async def call(app: Any, scope: Scope, receive: Receive) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def layer(app: Any, buffer_bytes: int = 100) -> BodyReadMiddleware:
    return BodyReadMiddleware(app, seconds=SECONDS, buffer_bytes=buffer_bytes, renderer=RENDERER)


async def test_a_body_in_chunks_is_handed_on_whole() -> None:
    echo = Echo()
    sent = await call(
        layer(echo), scope_of(transfer_encoding="chunked"), chunks(b"ab", b"cd", b"e")
    )
    assert sent[1]["body"] == b"5"
    assert echo.received == [{"type": "http.request", "body": b"abcde", "more_body": False}]


async def test_a_body_that_stops_arriving_is_a_408_that_closes_the_connection() -> None:
    echo = Echo()
    started = asyncio.get_running_loop().time()
    sent = await call(layer(echo), scope_of(content_length="10"), chunks(b"a", then=stall))
    elapsed = asyncio.get_running_loop().time() - started
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["code"] == "request_timeout"
    assert echo.received == []  # the app never ran
    assert SECONDS <= elapsed < SECONDS + 0.5


async def test_a_body_longer_than_the_buffer_streams_on() -> None:
    echo = Echo()
    parts = [b"x" * 60, b"y" * 60, b"z" * 60]
    sent = await call(layer(echo), scope_of(transfer_encoding="chunked"), chunks(*parts))
    assert sent[1]["body"] == b"180"
    assert [len(m["body"]) for m in echo.received] == [120, 60]  # read ahead just past 100


async def test_an_announced_length_over_the_buffer_is_not_read_ahead() -> None:
    echo = Echo()
    sent = await call(layer(echo), scope_of(content_length="500"), chunks(b"a" * 500))
    assert sent[1]["body"] == b"500"
    assert echo.received == [{"type": "http.request", "body": b"a" * 500, "more_body": False}]


async def test_a_client_gone_while_sending_is_what_the_app_hears() -> None:
    echo = Echo()

    async def gone() -> Message:
        return {"type": "http.disconnect"}

    await call(layer(echo), scope_of(content_length="10"), chunks(b"a", then=gone))
    assert echo.received == [{"type": "http.disconnect"}]


async def test_a_request_without_a_body_passes_straight_through() -> None:
    echo = Echo()
    sent = await call(layer(echo), scope_of("GET"), chunks(b""))
    assert sent[1]["body"] == b"0"


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="more than zero"):
        BodyReadMiddleware(Echo(), seconds=0, buffer_bytes=1, renderer=RENDERER)


async def test_slow_bodies_hold_no_slot_of_the_load_shedder() -> None:
    """As many stalled bodies as the worker takes requests: the next request still runs."""
    settings = make_settings(
        MAX_CONCURRENT_REQUESTS=2, REQUEST_QUEUE_SIZE=0, REQUEST_BODY_TIMEOUT_SECONDS=1
    )
    app = create_app(settings)
    async with LifespanManager(app):
        headers = {"content_length": "20", "content_type": "application/json"}
        stalled = [
            asyncio.create_task(
                call(app, scope_of(path="/api/v1/items", **headers), chunks(b"{", then=stall))
            )
            for _ in range(4)
        ]
        await asyncio.sleep(0.1)  # every stalled request is in
        sent = await call(app, scope_of("GET", "/api/v1/meta"), chunks(b""))
        answers = await asyncio.gather(*stalled)
    assert sent[0]["status"] == 200
    assert {answer[0]["status"] for answer in answers} == {408}
