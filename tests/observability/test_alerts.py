"""Security alerts: one per window past a threshold, posted to a real webhook on loopback."""

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import httpx2
import pytest

from app.core.config import Settings
from app.deps import resources_of
from app.infra.http import ResilientTransport
from app.main import create_app
from app.observability.alerts import SecurityAlerts
from tests.harness import (
    FakeClock,
    LogLines,
    client_for,
    free_port,
    log_lines,
    make_settings,
    running,
)
from tests.observability.loopback import LoopbackServer
from tests.upstream import resilient_client

pytestmark = pytest.mark.anyio

ME = "/api/v1/users/me"


class Webhook(BaseHTTPRequestHandler):
    """Records each JSON body posted; answers `status` after `delay` seconds."""

    bodies: ClassVar[list[dict[str, Any]]] = []
    status: ClassVar[int] = 204
    delay: ClassVar[float] = 0.0
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.lock:
            type(self).bodies.append(body)
        time.sleep(self.delay)
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> type[Webhook]:
    Webhook.bodies, Webhook.status, Webhook.delay = [], 204, 0.0
    return Webhook


async def until(condition: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        await asyncio.sleep(0.02)


def alerts_for(http: httpx2.AsyncClient, clock: FakeClock, **settings: Any) -> SecurityAlerts:
    chosen = make_settings(**settings).alerts
    return SecurityAlerts(chosen, http=http, service="svc", clock=clock, retry_delay=0.01)


async def test_one_alert_per_window_past_the_threshold() -> None:
    clock = FakeClock()
    async with httpx2.AsyncClient() as http:
        alerts = alerts_for(http, clock, ALERT_AUTH_FAILURES_PER_MINUTE=3)
        with log_lines() as logs:
            for _ in range(3):
                alerts.auth_failure()
            quiet = list(logs.events("security.alert"))
            for _ in range(20):
                alerts.auth_failure()
            clock.advance(60)
            for _ in range(4):
                alerts.auth_failure()
            for _ in range(1000):
                alerts.rate_limited()  # its threshold is its own (and the default: 600)
    assert quiet == []
    lines = logs.events("security.alert")
    assert [(line["kind"], line["count"], line["threshold"]) for line in lines] == [
        ("auth_failures", 4, 3),
        ("auth_failures", 4, 3),
        ("rate_limited", 601, 600),
    ]
    assert lines[0]["window_start"] == "1970-01-01T00:16:00+00:00"  # the clock's minute
    assert lines[1]["window_start"] == "1970-01-01T00:17:00+00:00"
    assert all(line["level"] == "warning" for line in lines)


async def test_a_threshold_of_zero_never_alerts() -> None:
    async with httpx2.AsyncClient() as http:
        alerts = alerts_for(http, FakeClock(), ALERT_AUTH_FAILURES_PER_MINUTE=0)
        with log_lines() as logs:
            for _ in range(500):
                alerts.auth_failure()
    assert logs.events("security.alert") == []


async def test_the_alert_is_posted_without_holding_up_the_request(
    settings: Settings, webhook: type[Webhook]
) -> None:
    webhook.delay = 1.5  # a slow receiver
    with LoopbackServer(webhook) as receiver:
        app = create_app(
            make_settings(
                DATABASE_URL=settings.database.url,
                ALERT_AUTH_FAILURES_PER_MINUTE=2,
                ALERT_WEBHOOK_URL=receiver.url,
            )
        )
        with log_lines() as logs:
            async with running(app), client_for(app) as client:
                timings = []
                for _ in range(4):
                    started = time.monotonic()
                    assert (await client.get(ME)).status_code == 401
                    timings.append(time.monotonic() - started)
                await until(lambda: webhook.bodies)
    assert max(timings) < 1.0  # the third request crossed the threshold, and did not wait
    [body] = webhook.bodies
    assert body["kind"] == "auth_failures"
    assert (body["count"], body["threshold"]) == (3, 2)
    assert body["service"] == "production-fastapi-backend"
    assert "more than 2 auth failures" in body["text"]
    [line] = logs.events("security.alert")
    assert line["count"] == 3
    assert receiver.url not in json.dumps(logs.all())


async def test_rate_limit_refusals_raise_their_own_alert(settings: Settings) -> None:
    app = create_app(
        make_settings(
            DATABASE_URL=settings.database.url,
            RATE_LIMIT_ENABLED=True,
            RATE_LIMIT_PER_MINUTE=1,
            RATE_LIMIT_BURST=0,
            ALERT_RATE_LIMITED_PER_MINUTE=2,
        )
    )
    with log_lines() as logs:
        async with running(app), client_for(app) as client:
            statuses = [(await client.get(ME)).status_code for _ in range(6)]
    assert statuses == [401, 429, 429, 429, 429, 429]
    [line] = logs.events("security.alert")
    assert (line["kind"], line["count"]) == ("rate_limited", 3)


async def alert_once(url: str, *, until_failed: bool) -> LogLines:
    """Cross a threshold of 1 once with a webhook at `url`, then close; return the log lines."""
    async with httpx2.AsyncClient() as http:
        alerts = alerts_for(
            http, FakeClock(), ALERT_AUTH_FAILURES_PER_MINUTE=1, ALERT_WEBHOOK_URL=url
        )
        with log_lines() as logs:
            alerts.auth_failure()
            alerts.auth_failure()
            if until_failed:
                await until(lambda: logs.events("security.alert_webhook_failed"))
            await alerts.aclose()  # waits for a post in flight
    return logs


async def test_a_failing_webhook_is_retried_then_logged_never_raised(
    webhook: type[Webhook],
) -> None:
    webhook.status = 500
    with LoopbackServer(webhook) as receiver:
        logs = await alert_once(receiver.url, until_failed=True)
    assert len(webhook.bodies) == 3  # three tries
    [failure] = logs.events("security.alert_webhook_failed")
    assert failure["error"] == "HTTP 500"
    assert failure["level"] == "error"


async def test_an_unreachable_webhook_is_logged_by_error_type_only() -> None:
    url = f"http://127.0.0.1:{free_port()}/hook?token=s3cr3t-in-the-url"
    logs = await alert_once(url, until_failed=True)
    [failure] = logs.events("security.alert_webhook_failed")
    assert failure["error"] == "ConnectError"
    assert "s3cr3t" not in json.dumps(logs.all())


async def test_closing_gives_a_slow_post_its_chance(webhook: type[Webhook]) -> None:
    webhook.delay = 0.3
    with LoopbackServer(webhook) as receiver:
        logs = await alert_once(receiver.url, until_failed=False)
    assert len(webhook.bodies) == 1
    assert logs.events("security.alert_webhook_failed") == []


async def test_an_open_breaker_stops_the_retries_and_is_logged(webhook: type[Webhook]) -> None:
    webhook.status = 503
    with LoopbackServer(webhook) as receiver:
        # The app's kind of client: its breaker for the webhook's host opens at the first 503.
        async with resilient_client(retries=2, threshold=1) as http:
            alerts = alerts_for(
                http, FakeClock(), ALERT_AUTH_FAILURES_PER_MINUTE=1, ALERT_WEBHOOK_URL=receiver.url
            )
            with log_lines() as logs:
                alerts.auth_failure()
                alerts.auth_failure()
                await until(lambda: logs.events("security.alert_webhook_failed"))
                await alerts.aclose()
    assert len(webhook.bodies) == 1  # a POST: the client never repeats it, the alert stopped
    [failure] = logs.events("security.alert_webhook_failed")
    assert failure["error"] == "CircuitOpenError"


async def test_the_app_posts_alerts_through_its_resilient_client(settings: Settings) -> None:
    app = create_app(settings)
    transport = resources_of(app).http._transport
    assert isinstance(transport, ResilientTransport)
    assert resources_of(app).alerts.http is resources_of(app).http
