"""Throughput with Redis frozen (SIGSTOP) against Redis answering, two workers on PostgreSQL.

Starts a private redis-server on a free port (only that one is ever frozen), creates a database
`bench_redis_frozen` on the PostgreSQL server of BENCH_DATABASE_URL (default: the local server
the tests use), registers a user with one item, and loads GET /api/v1/items/{id} with `wrk`:
rate limiting on in Redis (limits nobody reaches, so every request asks Redis) and the item
cache in Redis (`--endpoint create`: POST /api/v1/items, each with an Idempotency-Key of
its own, whose claim takes a Redis lock). Three runs: Redis answering; Redis frozen from the
first request of the run (no warm-up, so the breaker opening is measured too); Redis frozen
with the circuit breaker effectively off and the old 2 s socket timeout, for comparison.
Prints one JSON line.

    uv run python bench/redis_frozen.py        # needs wrk, redis-server and PostgreSQL

Target (docs/resilience.md): frozen at least 50% of normal.
"""

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import item_cache
import servers

DATABASE = "bench_redis_frozen"
NO_BREAKER = {"REDIS_BREAKER_FAILURES": "1000000000", "REDIS_SOCKET_TIMEOUT": "2"}


@contextmanager
def redis_server(directory: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("redis-server is not installed: apt-get install redis-server")
    port = servers.free_port()
    command = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", str(directory)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    try:
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        process.send_signal(signal.SIGCONT)
        process.terminate()
        process.wait(timeout=10)


# Creates: each with an Idempotency-Key of its own (the claim takes a Redis lock).
CREATE = """
counter = 0
request = function()
  counter = counter + 1
  local headers = {["Authorization"] = "%s", ["Content-Type"] = "application/json",
                   ["Idempotency-Key"] = "k" .. math.random(1, 1000000000) .. "-" .. counter}
  return wrk.format("POST", "/api/v1/items", headers,
                    '{"title": "bench", "price": "1.00", "currency": "EUR"}')
end
"""


def run(env: dict[str, str], args: argparse.Namespace, tmp: Path, freeze: int | None) -> float:
    """Requests per second of the endpoint; Redis (pid `freeze`) frozen during the load."""
    with servers.running(servers.APP, env, workers=2) as port:
        path, authorization = asyncio.run(item_cache.seed(f"http://127.0.0.1:{port}"))
        script = tmp / "load.lua"
        if args.endpoint == "create":
            path = "/api/v1/items"
            script.write_text(CREATE % authorization)
        else:
            script.write_text(
                f'wrk.method = "GET"\nwrk.headers["Authorization"] = "{authorization}"\n'
            )
        if freeze is None:
            return servers.requests_per_second(
                port, path, seconds=args.seconds, connections=args.connections, script=script
            )
        os.kill(freeze, signal.SIGSTOP)
        try:
            return servers.requests_per_second(
                port,
                path,
                seconds=args.seconds,
                connections=args.connections,
                script=script,
                warm_up=False,
            )
        finally:
            os.kill(freeze, signal.SIGCONT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--endpoint", choices=("read", "create"), default="read")
    args = parser.parse_args()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as (redis_url, redis):
        for name, frozen, extra in (
            ("normal", False, {}),
            ("frozen", True, {}),
            ("frozen_without_breaker", True, NO_BREAKER),
        ):
            url = asyncio.run(servers.fresh_postgres_database(DATABASE))
            env = {**os.environ, "LOG_LEVEL": "ERROR", "DATABASE_URL": url,
                   "REDIS_URL": redis_url, "RATE_LIMIT_PER_MINUTE": "100000000",
                   "RATE_LIMIT_PER_HOUR": "100000000", **extra}  # fmt: skip
            servers.migrate(env)
            results[name] = run(env, args, Path(tmp), redis.pid if frozen else None)
    ratio = results["frozen"] / results["normal"]
    print(json.dumps({
        "benchmark": "redis_frozen", "endpoint": args.endpoint, "database": "postgresql",
        "workers": 2,
        "connections": args.connections, "seconds": args.seconds,
        **{f"{name}_rps": round(rps) for name, rps in results.items()},
        "ratio": round(ratio, 2), "target_ratio": 0.5,
    }))  # fmt: skip
    sys.exit(0 if ratio >= 0.5 else 1)


if __name__ == "__main__":
    main()
