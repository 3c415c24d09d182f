"""The in-memory rate limit store's cost per request, as its moving window fills.

A moving window keeps one timestamp per request it accepted within the window, up to the
limit: a client allowed 100,000 requests an hour has that many. A request's check must cost
the same at the first hit and at the hundred-thousandth. This fills one client's minute and
hour windows (limits high enough never to refuse) and prints, as one JSON line, the µs a hit
costs when each window already holds that many hits.

    uv run python bench/rate_limit_store.py [--sizes 1000 10000 100000]
"""

import argparse
import asyncio
import json
import time

from app.core.quotas import Quota
from app.infra.rate_limit_storage import MemoryQuotaStore

QUOTAS = (Quota("minute", 10**9, 60), Quota("hour", 10**9, 3600))
MEASURED = 2_000  # hits timed at each size


async def per_hit(sizes: list[int]) -> dict[str, float]:
    """µs per hit, by how many hits the windows held when it was timed."""
    store = MemoryQuotaStore(prune_interval=3600)
    hits, found = 0, {}
    for size in sorted(sizes):
        while hits < size:
            await store.hit("ip:bench", QUOTAS)
            hits += 1
        started = time.perf_counter()
        for _ in range(MEASURED):
            await store.hit("ip:bench", QUOTAS)
        found[str(size)] = round((time.perf_counter() - started) / MEASURED * 1e6, 1)
        hits += MEASURED
    return found


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    args = parser.parse_args()
    print(json.dumps({"us_per_hit_at_window_size": asyncio.run(per_hit(args.sizes))}))
