"""Worker and scheduler processes on a private Redis: run, retry, schedule, stop, die, recover."""

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from httpx2 import AsyncClient

from tests.identity import make_superuser, signed_up, unique_email
from tests.jobs.processes import (
    feeding_app,
    job_process,
    job_settings,
    poll,
    slow_smtp,
    smtp_to,
)
from tests.processes import RedisServer
from tests.security.helpers import age_action_tokens

pytestmark = pytest.mark.anyio
JOBS = "/api/v1/jobs"


async def job_of(client: AsyncClient, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    response = await client.get(f"{JOBS}/{job_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def finished(job: dict[str, Any]) -> bool:
    return job["status"] in {"succeeded", "failed"}


async def test_a_worker_runs_what_the_api_enqueued_retries_failures_and_the_schedule_fires(
    live_database_url: str, redis_server: RedisServer, tmp_path: Path, closed_port: int
) -> None:
    settings = job_settings(
        live_database_url, redis_server.url, tmp_path,
        JOBS_MAX_RETRIES="1", JOBS_PURGE_CRON="* * * * * *", **smtp_to(closed_port),
    )  # fmt: skip
    with (
        job_process("worker", tmp_path, settings) as worker,
        job_process("scheduler", tmp_path, settings),
    ):
        async with feeding_app(settings) as (app, client):
            alice = await signed_up(client, unique_email("alice"))
            admin_email = unique_email("admin")
            admin = await signed_up(client, admin_email)
            await make_superuser(app, admin_email)

            started = await client.post("/api/v1/users/me/export", headers=alice)
            assert started.status_code == 202
            export = await poll(lambda: job_of(client, alice, started.json()["id"]), finished)
            assert export["status"] == "succeeded", export
            download = await client.get(export["result_url"], headers=alice)
            assert download.status_code == 200
            # The job's log lines carry the request id of the request that asked for it.
            request_id = started.headers["x-request-id"]
            ran = [e for e in worker.events("job_finished") if e.get("job_id") == export["id"]]
            assert [e["request_id"] for e in ran] == [request_id]

            # The mail server is down: one retry, then failed, and an operator can see it.
            assert (
                await client.post("/api/v1/auth/verify-email/request", headers=alice)
            ).status_code == 202
            mine = await poll(
                lambda: client.get(JOBS, params={"status": "failed"}, headers=alice),
                lambda response: response.json()["items"],
            )
            [failed] = mine.json()["items"]
            assert failed["task"] == "send_email"
            assert failed["attempts"] == 2
            assert failed["error"] == "The mail server did not accept the message."
            outcomes = [
                e["outcome"]
                for e in worker.events("job_finished")
                if e.get("job_id") == failed["id"]
            ]
            assert outcomes == ["retried", "failed"]

            # The purge, scheduled every second, ran.
            purges = await poll(
                lambda: client.get(JOBS, params={"status": "succeeded"}, headers=admin),
                lambda response: any(
                    j["task"] == "purge_expired" for j in response.json()["items"]
                ),
            )
            assert purges.status_code == 200


# A broker or a signal concerns the worker, not the database: one backend each (the killed
# worker's lease, which each backend's claim query decides, is tested on both).
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sigterm_lets_a_running_job_finish(
    live_database_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    with slow_smtp(2.0) as (smtp_port, inbox):
        settings = job_settings(live_database_url, redis_server.url, tmp_path, **smtp_to(smtp_port))
        with job_process("worker", tmp_path, settings) as worker:
            async with feeding_app(settings) as (_, client):
                alice = await signed_up(client, unique_email("alice"))
                assert (
                    await client.post("/api/v1/auth/verify-email/request", headers=alice)
                ).status_code == 202
                await poll(_async(lambda: inbox.started), lambda started: started == 1)
                worker.process.send_signal(signal.SIGTERM)
                assert worker.process.wait(timeout=30) == 0
                [job] = (await client.get(JOBS, headers=alice)).json()["items"]
        assert job["status"] == "succeeded"
        assert len(inbox.received) == 1
        assert worker.events("worker_stopped")


async def test_a_killed_workers_job_runs_again_on_another_worker(
    live_database_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    with slow_smtp(3.0) as (smtp_port, inbox):
        settings = job_settings(
            live_database_url, redis_server.url, tmp_path,
            JOBS_LEASE_SECONDS="1", **smtp_to(smtp_port),
        )  # fmt: skip
        with job_process("scheduler", tmp_path, settings):
            async with feeding_app(settings) as (_, client):
                alice = await signed_up(client, unique_email("alice"))
                with job_process("worker", tmp_path, settings) as doomed:
                    assert (
                        await client.post("/api/v1/auth/verify-email/request", headers=alice)
                    ).status_code == 202
                    await poll(_async(lambda: inbox.started), lambda started: started == 1)
                    os.killpg(doomed.process.pid, signal.SIGKILL)
                    doomed.process.wait(timeout=10)
                with job_process("worker", tmp_path, settings):
                    [job] = (await client.get(JOBS, headers=alice)).json()["items"]
                    job = await poll(lambda: job_of(client, alice, job["id"]), finished)
        assert job["status"] == "succeeded"
        assert job["attempts"] == 2  # the killed attempt, then the one that mailed


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_job_committed_while_the_broker_is_down_runs_once_it_is_back(
    live_database_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = job_settings(live_database_url, redis_server.url, tmp_path)
    redis_server.stop()
    async with feeding_app(settings) as (_, client):
        alice = await signed_up(client, unique_email("alice"))
        began = time.monotonic()
        response = await client.post("/api/v1/users/me/export", headers=alice)
        assert response.status_code == 202  # committed; sending it failed after the answer
        assert time.monotonic() - began < 15
        assert (await job_of(client, alice, response.json()["id"]))["status"] == "queued"
        # Worker and scheduler start while the broker is still down, and wait for it.
        with (
            job_process("worker", tmp_path, settings),
            job_process("scheduler", tmp_path, settings),
        ):
            redis_server.start()
            job = await poll(lambda: job_of(client, alice, response.json()["id"]), finished)
    assert job["status"] == "succeeded"
    assert job["attempts"] == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_broker_restart_as_a_job_ends_loses_nothing_and_needs_no_process_restart(
    live_database_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    verify = "/api/v1/auth/verify-email/request"
    with slow_smtp(2.0) as (smtp_port, inbox):
        settings = job_settings(live_database_url, redis_server.url, tmp_path, **smtp_to(smtp_port))
        with job_process("worker", tmp_path, settings) as worker:
            async with feeding_app(settings) as (app, client):
                alice = await signed_up(client, unique_email("alice"))
                assert (await client.post(verify, headers=alice)).status_code == 202
                await poll(_async(lambda: inbox.started), lambda started: started == 1)
                # The job ends, and its message is acknowledged, while Redis is away.
                redis_server.stop()
                [job] = (await client.get(JOBS, headers=alice)).json()["items"]
                job = await poll(lambda: job_of(client, alice, job["id"]), finished)
                await poll(_async(lambda: worker.events("job_ack_failed")), bool)
                redis_server.start()  # empty: the stream and its consumer group are gone
                await age_action_tokens(app)  # one verification mail a minute: it is over
                # Sent on the pooled connection the restart closed: tried again on a new one.
                assert (await client.post(verify, headers=alice)).status_code == 202
                await poll(_async(lambda: len(inbox.received)), lambda received: received == 2)
    assert (job["status"], job["attempts"]) == ("succeeded", 1)
    assert len(inbox.received) == 2  # each mail once
    assert "Traceback" not in worker.log.read_text()  # an outage, not a bug


def _async(read: Any) -> Any:
    async def call() -> Any:
        return read()

    return call
