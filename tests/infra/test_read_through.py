"""The typed read-through helper every domain caches with: authorization before storing."""

import pytest
from pydantic import BaseModel

from app.infra.cache import MemoryCache
from app.infra.read_through import read_through

pytestmark = pytest.mark.anyio


class Thing(BaseModel):
    id: int
    owner: str


class Loader:
    def __init__(self, value: Thing | None) -> None:
        self.value = value
        self.calls = 0

    async def __call__(self) -> Thing | None:
        self.calls += 1
        return self.value


def cache() -> MemoryCache:
    return MemoryCache(max_entries=10, default_ttl=60)


async def test_a_loaded_value_is_stored_and_then_served_from_the_cache() -> None:
    store, load = cache(), Loader(Thing(id=1, owner="ada"))
    first = await read_through(store, "things:1", Thing, load)
    second = await read_through(store, "things:1", Thing, load)
    assert first == second == Thing(id=1, owner="ada")
    assert load.calls == 1
    assert await store.get("things:1") == b'{"id":1,"owner":"ada"}'


async def test_nothing_found_is_not_cached() -> None:
    store, load = cache(), Loader(None)
    assert await read_through(store, "things:2", Thing, load) is None
    assert await read_through(store, "things:2", Thing, load) is None
    assert load.calls == 2
    assert await store.get("things:2") is None


async def test_a_refused_caller_never_fills_the_cache() -> None:
    store, load = cache(), Loader(Thing(id=3, owner="ada"))
    refused = await read_through(
        store, "things:3", Thing, load, visible=lambda thing: thing.owner == "bob"
    )
    assert refused is None
    assert await store.get("things:3") is None


async def test_a_cached_copy_is_still_refused_to_a_caller_who_may_not_see_it() -> None:
    store, load = cache(), Loader(Thing(id=4, owner="ada"))
    await read_through(store, "things:4", Thing, load)
    for_bob = await read_through(
        store, "things:4", Thing, load, visible=lambda thing: thing.owner == "bob"
    )
    assert for_bob is None
    assert load.calls == 1  # refused from the cached copy, not by loading again
