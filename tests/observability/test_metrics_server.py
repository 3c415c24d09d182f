"""Metrics of real uvicorn workers: two workers add up, a killed one's counts stay, restarts
start from zero (PROMETHEUS_MULTIPROC_DIR, multiprocess mode)."""

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest
from httpx2 import AsyncClient
from prometheus_client.multiprocess import MultiProcessCollector

from tests.harness import free_port
from tests.observability.helpers import Samples, parse, value
from tests.processes import server_process, started_events, wait_for_workers, wait_until

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
PATH = "/api/v1/meta"
ROUTE = {"method": "GET", "route": PATH, "status": "200"}
STARTUP_SECONDS = 60  # two workers importing the app, on a machine shared with other suites


@contextmanager
def two_workers(tmp_path: Path, metrics_dir: Path) -> Iterator[tuple[int, Path]]:
    """`uvicorn --workers 2` sharing `metrics_dir`; yields the port and the server's log."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RATE_LIMIT_", "REDIS_"))}
    env.update(
        ENVIRONMENT="test",
        LOG_FORMAT="json",
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'app.db'}",  # /meta reads no table
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        SHUTDOWN_DRAIN_SECONDS="0",  # no load balancer to tell: stop at once
    )
    log = tmp_path / f"uvicorn-{port}.log"
    command = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app"]
    command += ["--workers", "2", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--no-proxy-headers", "--no-access-log"]
    with server_process(command, log, {**env, "PYTHONPATH": str(ROOT / "src")}) as server:
        wait_for_workers(server, log, port, 2, what="two uvicorn workers", seconds=STARTUP_SECONDS)
        yield port, log


async def fire(port: int, count: int) -> None:
    """`count` requests, 8 at a time, each on a connection of its own (so both workers serve)."""
    limit = anyio.Semaphore(8)

    async def one() -> None:
        async with limit, AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as c:
            assert (await c.get(PATH)).status_code == 200

    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(one)


async def scrape(port: int) -> Samples:
    async with AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return parse(response.text)


def per_worker(metrics_dir: Path) -> dict[int, float]:
    """Each worker's own count of ROUTE, read from its file alone."""
    counts = {}
    for file in metrics_dir.glob("counter_*.db"):
        families = MultiProcessCollector.merge([str(file)])  # type: ignore[no-untyped-call]
        counts[int(file.stem.split("_")[1])] = sum(
            sample.value
            for family in families
            for sample in family.samples
            if sample.name == "http_requests_total" and sample.labels == ROUTE
        )
    return counts


async def test_two_workers_add_up_and_a_killed_workers_counts_stay(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    with two_workers(tmp_path, metrics_dir) as (port, log):
        await fire(port, 60)
        scrapes = [await scrape(port) for _ in range(4)]
        counts = per_worker(metrics_dir)
        assert sorted(counts.values())[0] > 0, counts  # both workers served
        victim = max(counts, key=lambda pid: counts[pid])
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: started_events(log) >= 3, "a new worker")
        await fire(port, 10)
        after = await scrape(port)
    assert sum(counts.values()) == 60
    assert {value(samples, "http_requests_total", **ROUTE) for samples in scrapes} == {60}
    # The dead worker's counts stay in the total; its gauges left with it.
    assert value(after, "http_requests_total", **ROUTE) == 70
    assert not (metrics_dir / f"gauge_livesum_{victim}.db").exists()
    assert (metrics_dir / f"counter_{victim}.db").exists()
    pids = {labels for name, labels in after if name == "process_resident_memory_bytes"}
    assert len(pids) == 2
    assert value(after, "http_requests_in_progress") == 1  # the scrape itself
    assert value(after, "db_pool_max_connections") == 2 * 15


async def test_a_restarted_server_starts_from_zero(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    with two_workers(tmp_path, metrics_dir) as (port, _):
        await fire(port, 20)
        first = await scrape(port)
    with two_workers(tmp_path, metrics_dir) as (port, _):
        await fire(port, 5)
        second = await scrape(port)
    assert value(first, "http_requests_total", **ROUTE) == 20
    assert value(second, "http_requests_total", **ROUTE) == 5
