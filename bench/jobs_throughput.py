"""Jobs per second through one worker, with a no-op task.

Starts a private redis-server on a free port, makes the schema in a fresh SQLite file (or the
database of BENCH_DATABASE_URL, whose `jobs` table it empties), commits `--jobs` job rows,
sends them all to the Redis stream, then runs one worker (taskiq's receiver, `--concurrency`
at a time) in this process until every job has succeeded. Each job costs what a real one
does besides its handler: a read from the stream, the claim (an UPDATE ... RETURNING), the
finish (an UPDATE) and the acknowledgement. Prints one JSON line; `jobs_per_cpu_second` divides
by this process's CPU time, which a busy machine does not change much.

    uv run python bench/jobs_throughput.py --jobs 2000 --concurrency 10
"""

import argparse
import asyncio
import functools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from redis_frozen import redis_server
from sqlalchemy import delete, func, select
from taskiq.receiver import Receiver

from app.core.config import build_settings
from app.core.logging import configure_logging
from app.db.base import Base, utcnow
from app.jobs import dispatcher, runner
from app.jobs.claims import Claim
from app.jobs.models import Job, JobStatus
from app.jobs.runner import Done, JobContext
from app.resources import build_resources, close_resources
from app.tasks import HANDLERS, job_context


async def noop(_: JobContext, __: Claim) -> Done:
    """The task measured: nothing but the job machinery around it."""
    return Done()


async def _prepare(resources: Any, count: int) -> None:
    async with resources.engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
        await connection.execute(delete(Job))
    async with resources.session_factory() as session:
        session.add_all([Job(task="noop", args={}, max_attempts=1) for _ in range(count)])
        await session.commit()
    while await dispatcher.dispatch(
        resources.session_factory, resources.jobs, redispatch_seconds=3600
    ):
        pass


async def _succeeded(resources: Any) -> int:
    async with resources.session_factory() as session:
        query = select(func.count()).select_from(Job).where(Job.status == JobStatus.SUCCEEDED)
        return int(await session.scalar(query) or 0)


async def measure(
    database_url: str, redis_url: str, count: int, concurrency: int
) -> dict[str, Any]:
    """Run `count` no-op jobs through one worker; return the figures."""
    settings = build_settings(env_file=None, DATABASE_URL=database_url, REDIS_URL=redis_url,
                              LOG_LEVEL="WARNING", JOBS_CONCURRENCY=concurrency)  # fmt: skip
    configure_logging(settings.logging, sql_echo=False)
    resources = build_resources(settings, version="bench")
    handlers = {**HANDLERS, "noop": noop}
    resources.jobs.consume_with(functools.partial(runner.run, job_context(resources), handlers))
    await _prepare(resources, count)
    await resources.jobs.start()
    stop = asyncio.Event()
    receiver = Receiver(resources.jobs.broker, max_async_tasks=concurrency, run_startup=False)
    began, cpu = time.perf_counter(), time.process_time()
    listening = asyncio.create_task(receiver.listen(stop))
    while await _succeeded(resources) < count:  # noqa: ASYNC110 - the database is the judge
        await asyncio.sleep(0.05)
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    stop.set()
    await listening
    await close_resources(resources)
    return {"jobs": count, "concurrency": concurrency, "seconds": round(elapsed, 2),
            "jobs_per_second": round(count / elapsed, 1),
            # CPU of this process only: on a loaded machine, what the worker would do alone.
            "jobs_per_cpu_second": round(count / cpu, 1), "at": utcnow().isoformat()}  # fmt: skip


def main() -> None:
    """Parse the options, start Redis, measure, print one JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=10)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        database = os.environ.get(
            "BENCH_DATABASE_URL", f"sqlite+aiosqlite:///{Path(directory) / 'jobs.db'}"
        )
        with redis_server(Path(directory)) as (redis_url, _):
            figures = asyncio.run(measure(database, redis_url, options.jobs, options.concurrency))
    figures["database"] = database.split(":", 1)[0]
    json.dump(figures, sys.stdout)
    print()


if __name__ == "__main__":
    main()
