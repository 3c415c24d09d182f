"""The login throttle's stores, for the tests that run against each."""

import pytest

from tests.harness import free_port
from tests.security.helpers import Store
from tests.services import redis_url


@pytest.fixture(params=["database", pytest.param("redis", marks=pytest.mark.redis), "redis-down"])
def store(request: pytest.FixtureRequest) -> Store:
    """Each store in turn: the database, Redis, and Redis down (the database stands in)."""
    if request.param == "redis":
        url = redis_url()
        return Store({"REDIS_URL": url}, redis=url)
    if request.param == "redis-down":  # every Redis call fails: the database counts (and forgets)
        return Store({"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    return Store({})
