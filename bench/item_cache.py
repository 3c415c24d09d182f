"""Cached vs uncached GET /api/v1/items/{id} on PostgreSQL, one worker.

Creates a database `bench_items` on the PostgreSQL server of BENCH_DATABASE_URL (default: the
local server the tests use), migrates it, registers a user with one item, then loads the item
with `wrk` twice: with the read-through cache (in memory) and with CACHE_ENABLED=false.
Rate limiting is off so the single test user is never refused. Prints one JSON line.

    uv run python bench/item_cache.py          # needs wrk and PostgreSQL

Target (the items issue): cached at least 1.5x the uncached rate.
"""

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

import httpx2
import servers

sys.path.insert(0, str(Path(__file__).resolve().parent))

DATABASE = "bench_items"


async def seed(base_url: str) -> tuple[str, str]:
    """Register a user and create one item; return its path and a bearer header value."""
    async with httpx2.AsyncClient(base_url=base_url) as client:
        account = {"email": "bench@example.com", "password": "correct horse battery"}
        (await client.post("/api/v1/users", json=account)).raise_for_status()
        login = await client.post(
            "/api/v1/auth/login",
            data={"username": account["email"], "password": account["password"]},
        )
        token = login.json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        item = {"title": "Bench lamp", "price": "19.90", "currency": "EUR", "tags": ["a", "b"]}
        created = await client.post("/api/v1/items", json=item, headers=headers)
        created.raise_for_status()
        return f"/api/v1/items/{created.json()['id']}", f"Bearer {token}"


def measure(env: dict[str, str], args: argparse.Namespace, tmp: Path) -> float:
    """Requests per second of GET /items/{id} for one signed-in user."""
    with servers.running(servers.APP, env) as port:
        path, authorization = asyncio.run(seed(f"http://127.0.0.1:{port}"))
        script = tmp / "get_item.lua"
        script.write_text(f'wrk.method = "GET"\nwrk.headers["Authorization"] = "{authorization}"\n')
        return servers.requests_per_second(
            port, path, seconds=args.seconds, connections=args.connections, script=script
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, cache in (("cached", "true"), ("uncached", "false")):
            url = asyncio.run(servers.fresh_postgres_database(DATABASE))
            env = {**os.environ, "LOG_LEVEL": "WARNING", "RATE_LIMIT_ENABLED": "false",
                   "CACHE_ENABLED": cache, "DATABASE_URL": url}  # fmt: skip
            servers.migrate(env)
            results[name] = measure(env, args, Path(tmp))
    ratio = results["cached"] / results["uncached"]
    print(json.dumps({
        "benchmark": "item_cache", "database": "postgresql", "workers": 1,
        "cached_rps": round(results["cached"]), "uncached_rps": round(results["uncached"]),
        "ratio": round(ratio, 2), "target_ratio": 1.5,
    }))  # fmt: skip
    sys.exit(0 if ratio >= 1.5 else 1)


if __name__ == "__main__":
    main()
