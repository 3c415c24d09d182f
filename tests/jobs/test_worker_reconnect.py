"""The worker's wait between tries to reach its broker: it grows during an outage and starts
over once the broker answers, so a later outage is not met with the longest wait of an
earlier one. In process, with a Redis of the test's own that it stops and starts."""

import asyncio

import pytest

from app.core.backoff import Backoff
from app.resources import build_resources, close_resources
from app.worker import _listen
from tests.harness import make_settings
from tests.jobs.processes import poll
from tests.processes import RedisServer

pytestmark = pytest.mark.anyio

VERSION = "0.0.0-test"


def test_backoff_doubles_up_to_its_cap_and_starts_over() -> None:
    backoff = Backoff(first=0.5, cap=3.0)
    assert [backoff.next_wait() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next_wait() == 0.5


async def test_the_wait_starts_over_once_the_broker_answers_again(
    redis_server: RedisServer,
) -> None:
    redis_server.stop()
    settings = make_settings(JOBS_BROKER_URL=redis_server.url)
    resources = build_resources(settings, version=VERSION)
    backoff = Backoff(first=0.2, cap=10.0)
    stop = asyncio.Event()
    listening = asyncio.create_task(_listen(resources, stop, 1, backoff))

    async def wait() -> float:
        return backoff.current

    try:
        await poll(wait, lambda seconds: seconds >= 1.6, seconds=15)  # three failed tries
        redis_server.start()
        await poll(wait, lambda seconds: seconds == 0.2, seconds=15)  # started over
    finally:
        stop.set()
        async with asyncio.timeout(15):
            await listening  # stops when asked, without an error
        await close_resources(resources)
