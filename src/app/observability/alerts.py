"""Security alerts: too many auth failures or rate-limit refusals in one minute.

Each worker counts in windows of one calendar minute. The first time a window's count passes
its threshold, one `security.alert` line is logged and, with `ALERT_WEBHOOK_URL`, the alert is
posted there as JSON from a task of its own: the request that crossed the threshold never
waits for it, and a failing webhook is logged, never raised. Thresholds are per worker; the
Prometheus rules in deploy/prometheus/ watch the totals of every worker.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx2
import stamina
import structlog

from app.core.settings_operations import AlertSettings
from app.core.upstream import CircuitOpenError

log = structlog.get_logger(__name__)

WINDOW_SECONDS = 60
WEBHOOK_TIMEOUT_SECONDS = 5.0
WEBHOOK_ATTEMPTS = 3
CLOSE_WAIT_SECONDS = 5.0


@dataclass
class _Window:
    kind: str
    threshold: int  # 0: never alert
    start: int = -1  # the window's first second (a multiple of WINDOW_SECONDS)
    count: int = 0
    alerted: bool = False

    def add(self, now: float) -> bool:
        """Count one event; return True when this one takes the window past its threshold."""
        start = int(now) - int(now) % WINDOW_SECONDS
        if start != self.start:
            self.start, self.count, self.alerted = start, 0, False
        self.count += 1
        if self.alerted or not self.threshold or self.count <= self.threshold:
            return False
        self.alerted = True
        return True


def _worth_retrying(exc: Exception) -> bool:
    """Retry a failed post, but not one refused by the webhook host's open breaker."""
    return isinstance(exc, httpx2.HTTPError) and not isinstance(exc, CircuitOpenError)


class SecurityAlerts:
    """Counts auth failures and rate-limit refusals per minute, and raises the alarm once."""

    def __init__(
        self,
        settings: AlertSettings,
        *,
        http: httpx2.AsyncClient,
        service: str,
        clock: Callable[[], float] = time.time,
        retry_delay: float = 0.5,
    ) -> None:
        self.http = http
        self.service = service
        self.webhook_url = settings.webhook_url
        self.clock = clock
        self.retry_delay = retry_delay
        self.auth = _Window("auth_failures", settings.auth_failures_per_minute)
        self.refusals = _Window("rate_limited", settings.rate_limited_per_minute)
        self._posting: set[asyncio.Task[None]] = set()

    def auth_failure(self) -> None:
        """Count a 401 or 403 answer."""
        self._count(self.auth)

    def rate_limited(self) -> None:
        """Count a 429 answer of the rate limiter."""
        self._count(self.refusals)

    def _count(self, window: _Window) -> None:
        if window.add(self.clock()):
            self._alert(window)

    def _alert(self, window: _Window) -> None:
        alert = {
            "kind": window.kind,
            "count": window.count,
            "threshold": window.threshold,
            "window_start": datetime.fromtimestamp(window.start, UTC).isoformat(),
            "window_seconds": WINDOW_SECONDS,
            "service": self.service,
        }
        log.warning("security.alert", **alert)
        if self.webhook_url is None:
            return
        # "text" makes the post readable as-is by chat webhooks (Slack, Mattermost).
        text = (
            f"{self.service}: more than {window.threshold} {window.kind.replace('_', ' ')} "
            f"in the minute from {alert['window_start']}"
        )
        task = asyncio.get_running_loop().create_task(self._post({"text": text, **alert}))
        self._posting.add(task)
        task.add_done_callback(self._posting.discard)

    async def _post(self, alert: dict[str, Any]) -> None:
        assert self.webhook_url is not None  # noqa: S101 - only scheduled with a URL  # nosec B101
        url = self.webhook_url.get_secret_value()
        try:
            # The shared client never repeats a POST; an alert may be repeated (a duplicate
            # beats a lost one), so this caller retries, except while the host's breaker rests.
            async for attempt in stamina.retry_context(
                on=_worth_retrying,
                attempts=WEBHOOK_ATTEMPTS,
                timeout=None,
                wait_initial=self.retry_delay,
                wait_jitter=self.retry_delay,
            ):
                with attempt:
                    response = await self.http.post(
                        url, json=alert, timeout=WEBHOOK_TIMEOUT_SECONDS
                    )
                    response.raise_for_status()
        except httpx2.HTTPStatusError as exc:
            error = f"HTTP {exc.response.status_code}"
        except httpx2.HTTPError as exc:
            error = type(exc).__name__  # the message may hold the URL, and its token
        else:
            return
        log.error("security.alert_webhook_failed", kind=alert["kind"], error=error)

    async def aclose(self) -> None:
        """Give alerts still being posted a few seconds, then cancel them."""
        if not self._posting:
            return
        _, pending = await asyncio.wait(self._posting, timeout=CLOSE_WAIT_SECONDS)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
