"""`make bench`: the full stack against bare FastAPI baselines, in one run, in one table.

Starts, on one database seeded here (PostgreSQL at BENCH_DATABASE_URL, database `bench_run`):
- `ours`: the real app, full default stack (rate limiter on in memory with per-user keys,
  access log on), item cache off; `ours+cache`: the same with the cache on;
  `ours-limiter`: rate limiter off; `ours+redis`: rate limiter in Redis (BENCH_REDIS_URL);
- `bare`: bare FastAPI, the same handlers (bench/bare_app.py);
- `bare+orm`: bare FastAPI + async SQLAlchemy ORM, the same queries (bench/bare_orm_app.py);
- with `--before DIR`: `before`, the real app from another source tree (e.g. a worktree of
  `main`), with `ours`'s settings, to compare a change in the same run.
Each server is one worker pinned to CPU 0 (taskset, when there are two CPUs or more); wrk runs
on CPU 1. Rounds interleave the servers route by route, so a busy machine weighs on all of them
alike; the table shows each figure's median over the rounds. The rate limits are set too high
to refuse anything, so every request pays for a real quota check. Then: a cheap endpoint's p99
during a login storm (bench/login_storm.py) and the RSS of `ours` after 20k and 100k requests.
Writes bench/results/latest.md and prints it.

    uv run python bench/run.py [--rounds 3] [--seconds 5] [--server granian] [--before DIR]
"""

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx2
import login_storm
import report
import servers
from servers import Load

RESULTS = Path(__file__).resolve().parent / "results" / "latest.md"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
PASSWORD = "correct horse battery"
ITEM = '{"title": "Bench lamp", "price": "19.90", "currency": "EUR", "tags": ["a", "b"]}'
LIST_ITEMS = 60  # more than one page of 50: the list pays for its COUNT
OURS = {
    "LOG_LEVEL": "INFO",  # the access log stays on: a production server writes it
    "LOG_FORMAT": "json",
    "RATE_LIMIT_ENABLED": "true",
    "RATE_LIMIT_PER_MINUTE": str(10**9),
    "RATE_LIMIT_PER_HOUR": str(10**9),
    "ACCESS_TOKEN_TTL_SECONDS": str(24 * 3600),  # outlives the run
    "CACHE_ENABLED": "false",
}
VARIANTS = {
    "ours": {},
    "ours+cache": {"CACHE_ENABLED": "true"},
    "ours-limiter": {"RATE_LIMIT_ENABLED": "false"},
    "ours+redis": {"REDIS_URL": REDIS_URL},
}


async def seed(base_url: str) -> dict[str, str]:
    """Register a reader (with LIST_ITEMS items) and a writer; return ids, tokens, an item."""
    async with httpx2.AsyncClient(base_url=base_url, timeout=60) as client:
        found: dict[str, str] = {}
        for role in ("reader", "writer"):
            email = f"bench-{role}@example.com"
            user = await client.post("/api/v1/users", json={"email": email, "password": PASSWORD})
            user.raise_for_status()
            login = await client.post(
                "/api/v1/auth/login", data={"username": email, "password": PASSWORD}
            )
            login.raise_for_status()
            found[f"{role}_id"] = user.json()["id"]
            found[f"{role}_token"] = login.json()["access_token"]
        headers = {"Authorization": f"Bearer {found['reader_token']}"}
        for _ in range(LIST_ITEMS):
            created = await client.post("/api/v1/items", content=ITEM, headers={
                **headers, "Content-Type": "application/json"})  # fmt: skip
            created.raise_for_status()
        found["item"] = created.json()["id"]
        return found


def scripts(tmp: Path, seeded: dict[str, str]) -> dict[str, Path]:
    """wrk Lua scripts: anonymous GET, the reader's GET, the writer's POST."""
    bodies = {
        "anonymous": 'wrk.method = "GET"\n',
        "reader": f'wrk.headers["Authorization"] = "Bearer {seeded["reader_token"]}"\n',
        "writer": (
            f'wrk.method = "POST"\nwrk.body = {ITEM!r}\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {seeded["writer_token"]}"\n'
        ),
    }
    paths = {}
    for name, body in bodies.items():
        paths[name] = tmp / f"{name}.lua"
        paths[name].write_text(body)
    return paths


def routes(
    seeded: dict[str, str], before: bool, other_server: str | None
) -> list[tuple[str, str, str, list[str], str]]:
    """(label, path, script, servers, baseline) per row; the baseline is a server too."""
    mine = [
        "ours",
        *(["before"] if before else []),
        *([f"ours@{other_server}"] * bool(other_server)),
    ]
    item = f"/api/v1/items/{seeded['item']}"
    return [
        ("GET /api/v1/health/live", "/api/v1/health/live", "anonymous", mine, "bare"),
        ("GET /api/v1/meta", "/api/v1/meta", "anonymous", mine, "bare"),
        ("GET /api/v1/users/me", "/api/v1/users/me", "reader",
         [*mine, "ours-limiter", "ours+redis"], "bare+orm"),
        ("GET /api/v1/items/{id} uncached", item, "reader", mine, "bare+orm"),
        ("GET /api/v1/items/{id} cached", item, "reader", ["ours+cache"], "bare+orm"),
        ("GET /api/v1/items?limit=50", "/api/v1/items?limit=50", "reader", mine, "bare+orm"),
        ("POST /api/v1/items", "/api/v1/items", "writer", mine, "bare+orm"),
    ]  # fmt: skip


def measure_rounds(
    ports: dict[str, int], rows: list[tuple[str, str, str, list[str], str]],
    lua: dict[str, Path], args: argparse.Namespace,
) -> dict[tuple[str, str], list[Load]]:  # fmt: skip
    """Every (route, server) once per round, interleaved; the rounds' loads."""
    loads: dict[tuple[str, str], list[Load]] = defaultdict(list)
    for round_number in range(args.rounds):
        for label, path, script, mine, baseline in rows:
            for name in [baseline, *mine]:
                result = servers.load(
                    ports[name], path, seconds=args.seconds,
                    connections=args.connections, script=lua[script], cpu=1,
                )  # fmt: skip
                loads[label, name].append(result)
        print(f"round {round_number + 1} of {args.rounds} done", file=sys.stderr)
    return loads


def rss_growth(port: int, script: Path, connections: int) -> tuple[float, float]:
    """RSS (MiB) of the server on `port` after 20k and after 100k requests of users/me."""
    pid, done, marks = servers.pid_of(port), 0, []
    for mark in (20_000, 100_000):
        while done < mark:
            done += servers.load(port, "/api/v1/users/me", seconds=5, connections=connections,
                                 script=script, cpu=1).requests  # fmt: skip
        marks.append(servers.rss_mib(pid))
    return marks[0], marks[1]


def environments(
    url: str, seeded: dict[str, str] | None, before: str | None, other_server: str | None = None
) -> dict[str, dict[str, Any]]:
    """Each server's target and environment (and source tree, for `before`)."""
    base = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(servers.ROOT / "bench")}
    found: dict[str, dict[str, Any]] = {}
    for name, extra in VARIANTS.items():
        found[name] = {"target": servers.APP, "env": {**base, **OURS, **extra}}
    if other_server:  # the same app on the other server, for the choice of server
        found[f"ours@{other_server}"] = {**found["ours"], "server": other_server}
    if before:
        env = {**base, **OURS, "PYTHONPATH": str(Path(before) / "src")}
        found["before"] = {"target": servers.APP, "env": env, "cwd": before}
    found["bare"] = {"target": ["bare_app:app"], "env": base}
    if seeded is not None:
        ids = {"BENCH_USER_ID": seeded["reader_id"], "BENCH_WRITER_ID": seeded["writer_id"]}
        found["bare+orm"] = {"target": ["bare_orm_app:app"], "env": {**base, **ids}}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn")
    parser.add_argument("--before", help="another source tree of the app to compare")
    parser.add_argument("--other-server", choices=("uvicorn", "granian"),
                        help="also run the app on this server (rows `ours@<server>`)")  # fmt: skip
    parser.add_argument("--no-extras", action="store_true", help="skip login storm and RSS")
    args = parser.parse_args()
    url = asyncio.run(servers.fresh_postgres_database("bench_run"))
    servers.migrate({**os.environ, "DATABASE_URL": url})
    subprocess.run(["redis-cli", "-u", REDIS_URL, "flushdb"], capture_output=True, check=False)
    with tempfile.TemporaryDirectory() as tmp, servers.Group(args.server, cpu=0) as group:
        group.start({"ours": environments(url, None, None)["ours"]})
        seeded = asyncio.run(seed(f"http://127.0.0.1:{group.ports['ours']}"))
        others = environments(url, seeded, args.before, args.other_server)
        group.start({name: how for name, how in others.items() if name != "ours"})
        rows = routes(seeded, args.before is not None, args.other_server)
        lua = scripts(Path(tmp), seeded)
        loads = measure_rounds(group.ports, rows, lua, args)
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(report.render(rows, loads, {}, args))  # kept if the extras fail
        extras: dict[str, Any] = {}
        if not args.no_extras:
            extras["rss"] = rss_growth(group.ports["ours"], lua["reader"], args.connections)
    if not args.no_extras:
        storm = argparse.Namespace(duration=15.0, concurrency=32, rate=50.0, hash_concurrency=None)
        extras["storm"] = asyncio.run(login_storm.run(storm))
    text = report.render(rows, loads, extras, args)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
