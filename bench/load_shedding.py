"""p99 of admitted requests at 200 concurrent connections on a pool of 5, with and without a cap.

One worker on PostgreSQL (BENCH_DATABASE_URL, default the local server the tests use) with
DATABASE_POOL_SIZE=5 and no overflow, the item cache off so every request uses the database
(the access token's user, then the item). 200 clients, each on a kept-alive connection of its
own, send GET /api/v1/items/{id} back to back for `--seconds`, waiting `Retry-After` after a
503 as well-behaved clients do. Latencies are measured by the client, per request and by
status: wrk reports them for all responses together, and here the 503s of the cap must be told
apart from the admitted requests. Two runs: no cap
(MAX_CONCURRENT_REQUESTS=0), and a cap of `--cap` with a queue as long, waiting up to 0.5 s.
Prints one JSON line.

    uv run python bench/load_shedding.py       # needs PostgreSQL
"""

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections import Counter

import item_cache
import servers

DATABASE = "bench_load_shedding"


async def one_client(
    port: int, path: str, authorization: str, until: float, results: list[tuple[int, float]]
) -> None:
    """Send requests on one kept-alive connection until `until`; record (status, seconds)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: {authorization}\r\n\r\n"
    ).encode()
    try:
        while time.monotonic() < until:
            started = time.monotonic()
            writer.write(request)
            status_line = await reader.readline()
            length, retry_after = 0, 0.0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
                elif name.lower() == b"retry-after":
                    retry_after = float(value)
            await reader.readexactly(length)
            results.append((int(status_line.split()[1]), time.monotonic() - started))
            # As clients (and retrying libraries) do: a 503 says when to come back.
            await asyncio.sleep(retry_after)
    finally:
        writer.close()


def percentile(values: list[float], share: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * share))] if values else 0.0


async def flood(
    port: int, path: str, authorization: str, args: argparse.Namespace
) -> dict[str, object]:
    results: list[tuple[int, float]] = []
    until = time.monotonic() + args.seconds
    clients = [one_client(port, path, authorization, until, results) for _ in range(200)]
    await asyncio.gather(*clients)
    admitted = [seconds for status, seconds in results if status == 200]
    refused = [seconds for status, seconds in results if status == 503]
    return {
        "requests": len(results),
        "statuses": dict(Counter(status for status, _ in results)),
        "admitted_per_second": round(len(admitted) / args.seconds),
        "admitted_p50_ms": round(statistics.median(admitted) * 1000, 1) if admitted else None,
        "admitted_p99_ms": round(percentile(admitted, 0.99) * 1000, 1),
        "refused_p99_ms": round(percentile(refused, 0.99) * 1000, 1),
    }


def measure(env: dict[str, str], args: argparse.Namespace) -> dict[str, object]:
    with servers.running(servers.APP, env) as port:
        path, authorization = asyncio.run(item_cache.seed(f"http://127.0.0.1:{port}"))
        asyncio.run(flood(port, path, authorization, args))  # warm-up, not counted
        return asyncio.run(flood(port, path, authorization, args))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--cap", type=int, default=10)
    args = parser.parse_args()
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, cap in (("without_cap", 0), ("with_cap", args.cap)):
            env = {**os.environ, "LOG_LEVEL": "ERROR", "RATE_LIMIT_ENABLED": "false",
                   "CACHE_ENABLED": "false", "DATABASE_POOL_SIZE": "5",
                   "DATABASE_MAX_OVERFLOW": "0", "MAX_CONCURRENT_REQUESTS": str(cap),
                   "REQUEST_QUEUE_SIZE": str(cap), "REQUEST_QUEUE_TIMEOUT_SECONDS": "0.5",
                   "DATABASE_URL": asyncio.run(servers.fresh_postgres_database(DATABASE)),
                   "TMPDIR": tmp}  # fmt: skip
            servers.migrate(env)
            runs[name] = measure(env, args)
    print(json.dumps({
        "benchmark": "load_shedding", "database": "postgresql", "workers": 1, "pool": 5,
        "connections": 200, "seconds": args.seconds, "cap": args.cap, **runs,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
