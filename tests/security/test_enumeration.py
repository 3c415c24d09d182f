"""Attack: learn which emails have accounts from answers or their timing. Both are the same."""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from httpx2 import ASGITransport, AsyncClient
from sqlalchemy import event
from starlette.types import Message, Receive, Scope, Send

from app.core.config import Settings
from app.deps import resources_of
from app.main import create_app
from tests.harness import client_for, log_lines, make_settings, running
from tests.identity import register

pytestmark = pytest.mark.anyio


class BeforeTheAnswer:
    """Wraps the app: counts the SQL statements run before the response starts."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.running: list[str] = []
        self.before_answer: list[list[str]] = []

    @contextmanager
    def counting(self) -> Iterator[None]:
        engine = resources_of(self.app).engine.sync_engine

        def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            self.running.append(re.sub(r"sa_savepoint_\d+", "sa_savepoint", statement))

        event.listen(engine, "before_cursor_execute", count)
        try:
            yield
        finally:
            event.remove(engine, "before_cursor_execute", count)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def noting_the_start(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.before_answer.append(list(self.running))
            await send(message)

        self.running = []
        await self.app(scope, receive, noting_the_start)


async def test_a_reset_request_answers_before_any_work_for_known_and_unknown_emails(
    app: FastAPI, client: AsyncClient
) -> None:
    await register(client, "known@example.com")
    wrapped = BeforeTheAnswer(app)
    transport = ASGITransport(app=wrapped)
    answers = []
    async with AsyncClient(transport=transport, base_url="http://testserver") as probe:
        with wrapped.counting(), log_lines() as logs:
            answers += [
                await probe.post("/api/v1/auth/password-reset", json={"email": email})
                for email in ("known@example.com", "nobody@example.com")
            ]
    # The same statements before either answer (the job's row): the job looks the account up.
    known, unknown = wrapped.before_answer
    assert known == unknown
    assert not [statement for statement in known if "users" in statement]
    assert [a.status_code for a in answers] == [202, 202]
    assert answers[0].content == answers[1].content
    assert set(answers[0].headers) == set(answers[1].headers)
    # The work still happens, after the answer: the known address gets its mail.
    assert [m["to"] for m in logs.events("mail_sent")] == ["known@example.com"]


@pytest.mark.parametrize(("environment", "sent"), [("local", True), ("test", False)])
async def test_process_time_is_only_sent_in_local_development(
    settings: Settings, environment: str, sent: bool
) -> None:
    app = create_app(make_settings(DATABASE_URL=settings.database.url, ENVIRONMENT=environment))
    async with running(app), client_for(app) as client:
        response = await client.post("/api/v1/auth/password-reset", json={"email": "a@example.com"})
    assert ("x-process-time" in response.headers) is sent
