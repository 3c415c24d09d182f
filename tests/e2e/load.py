"""Concurrent creates against a running server, as well-behaved clients send them, and the checks.

Every create carries an `Idempotency-Key`. A client that gets a 5xx or no answer keeps the key
and, once the fault is over, sends the same request again (`resolve`): it then gets the 201 of
the first attempt if that one committed, or a fresh 201 if not. Afterwards every key has exactly
one 201 and one row, which `assert_consistent` checks against the database.
"""

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx2

ITEMS = "/api/v1/items"
RETRYABLE = frozenset({503, 504, 409})
RESOLVING_CLIENTS = 16  # 409: a retry found the first attempt still running


@dataclass
class Attempt:
    key: str
    started: float
    seconds: float
    status: int | None  # None: no answer (a reset or a timeout)
    code: str | None = None
    item_id: str | None = None
    retry_after: str | None = None
    error: str | None = None


@dataclass
class Load:
    """Concurrent clients creating items; a switch (`routing`) acts as the load balancer."""

    base_url: str
    headers: dict[str, str]
    concurrency: int = 8
    timeout: float = 30.0
    attempts: list[Attempt] = field(default_factory=list)
    routing: bool = True  # False: the load balancer sends this server nothing new
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def client(self) -> httpx2.AsyncClient:
        limits = httpx2.Limits(max_connections=self.concurrency)
        return httpx2.AsyncClient(
            base_url=self.base_url, timeout=self.timeout, limits=limits, trust_env=False
        )

    async def create(self, client: httpx2.AsyncClient, key: str) -> Attempt:
        body = {"title": f"load {key}", "price": "1.00", "currency": "EUR"}
        headers = {**self.headers, "Idempotency-Key": key}
        started = time.monotonic()
        try:
            response = await client.post(ITEMS, json=body, headers=headers)
        except httpx2.HTTPError as exc:
            attempt = Attempt(key, started, time.monotonic() - started, None, error=repr(exc))
        else:
            data: dict[str, Any] = response.json() if response.content else {}
            attempt = Attempt(
                key,
                started,
                time.monotonic() - started,
                response.status_code,
                code=data.get("code"),
                item_id=data.get("id") if response.status_code == 201 else None,
                retry_after=response.headers.get("retry-after"),
            )
        self.attempts.append(attempt)
        return attempt

    async def _client_loop(self, client: httpx2.AsyncClient) -> None:
        while not self._stop.is_set():
            if not self.routing:
                await asyncio.sleep(0.05)
                continue
            await self.create(client, uuid.uuid4().hex)

    async def run(self, seconds: float | None = None) -> None:
        """Send creates from `concurrency` clients until `stop()` (or for `seconds`)."""
        async with self.client() as client:
            loops = [
                asyncio.create_task(self._client_loop(client)) for _ in range(self.concurrency)
            ]
            try:
                if seconds is None:
                    await self._stop.wait()
                else:
                    await asyncio.sleep(seconds)
                    self._stop.set()
            finally:
                self._stop.set()
                await asyncio.gather(*loops)

    def stop(self) -> None:
        self._stop.set()

    def unresolved(self) -> list[str]:
        """Keys whose create may or may not have happened: no 201 yet, and not shed.

        A request shed with 503 `overloaded` never ran: there is nothing to find out.
        """
        created = {a.key for a in self.attempts if a.status == 201}
        ran = {a.key for a in self.attempts if a.code != "overloaded"}
        return sorted(ran - created)

    async def resolve(self, seconds: float = 30.0) -> None:
        """Retry every key without a 201 until it has one (the fault must be over)."""
        deadline = time.monotonic() + seconds
        gate = asyncio.Semaphore(RESOLVING_CLIENTS)  # a retry storm would only be shed again

        async def retry(client: httpx2.AsyncClient, key: str) -> Attempt:
            async with gate:
                return await self.create(client, key)

        async with self.client() as client:
            while (keys := self.unresolved()) and time.monotonic() < deadline:
                results = await asyncio.gather(*(retry(client, key) for key in keys))
                if any(r.status not in (201, *RETRYABLE) for r in results if r.status):
                    break  # a final answer other than a retryable one: reported by the checks
                if any(r.status != 201 for r in results):
                    await asyncio.sleep(0.3)

    def statuses(self) -> Counter[int | None]:
        return Counter(a.status for a in self.attempts)

    def created_between(self, start: float, end: float) -> int:
        return sum(1 for a in self.attempts if a.status == 201 and start <= a.started < end)


def assert_no_errors(load: Load) -> None:
    """No 500 ever, no request without an answer, and 503s that say when to retry."""
    statuses = load.statuses()
    unexpected = {s: n for s, n in statuses.items() if s not in (201, *RETRYABLE)}
    errors = [a.error for a in load.attempts if a.status is None][:3]
    assert unexpected == {}, (statuses, errors)
    unavailable = [a for a in load.attempts if a.status == 503]
    assert all(a.retry_after for a in unavailable), "every 503 carries Retry-After"


def assert_consistent(load: Load, rows: list[tuple[str, str]]) -> None:
    """Each key has one 201 item (first or replayed) and the database exactly those rows.

    `rows` are (id, title) of the user's items; titles carry the key of their request.
    """
    assert load.unresolved() == [], f"{len(load.unresolved())} creates never got a 201"
    ids_by_key: dict[str, set[str]] = {}
    for attempt in load.attempts:
        if attempt.status == 201 and attempt.item_id:
            ids_by_key.setdefault(attempt.key, set()).add(attempt.item_id)
    assert all(len(ids) == 1 for ids in ids_by_key.values()), "a key created two items"
    answered = {next(iter(ids)) for ids in ids_by_key.values()}
    stored = {str(item_id) for item_id, _ in rows}
    assert stored == answered, (
        f"{len(answered - stored)} answered 201 but missing, "
        f"{len(stored - answered)} stored without a 201"
    )
    assert len(rows) == len({title for _, title in rows}), "a key has two rows"
