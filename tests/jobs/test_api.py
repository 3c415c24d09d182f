"""Jobs through the API in embedded mode: export, status, listing, visibility, the result file."""

import json
import stat
from pathlib import Path

import anyio
import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient

from app.core.downloads import OpenedFile, open_download
from app.deps import resources_of
from app.jobs import router as jobs_router
from tests.harness import assert_problem
from tests.identity import DEFAULT_PASSWORD, make_superuser, signed_up
from tests.items.helpers import create_item

EXPORT = "/api/v1/users/me/export"
JOBS = "/api/v1/jobs"
ALICE, BOB, ADMIN = "alice@example.com", "bob@example.com", "admin@example.com"

pytestmark = pytest.mark.anyio


async def export(client: AsyncClient, headers: dict[str, str]) -> dict[str, str]:
    """Ask for an export; return the job as the 202 shows it, with its `Location`."""
    response = await client.post(EXPORT, headers=headers)
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"].endswith(f"{JOBS}/{job['id']}")
    return {**job, "location": response.headers["location"]}


async def test_an_export_runs_and_its_file_downloads(
    jobs_app: tuple[FastAPI, AsyncClient], results_dir: Path
) -> None:
    _, client = jobs_app
    alice = await signed_up(client, ALICE)
    for title in ("Lamp", "Desk"):
        await create_item(client, alice, title=title)
    started = await export(client, alice)
    assert started["status"] == "queued"

    job = (await client.get(started["location"], headers=alice)).json()
    assert job["status"] == "succeeded", job
    assert job["result"] == {"items": 2}
    assert job["attempts"] == 1
    assert job["finished_at"] is not None

    download = await client.get(job["result_url"], headers=alice)
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/json"
    disposition = download.headers["content-disposition"]
    assert disposition == f'attachment; filename="export_user_data-{job["id"]}.json"'
    document = json.loads(download.content)
    assert document["profile"]["email"] == ALICE
    assert sorted(item["title"] for item in document["items"]) == ["Desk", "Lamp"]
    # Personal data: readable by the service's user only.
    assert modes(results_dir) == (0o700, [0o600])


async def test_the_list_links_to_its_next_page(jobs_app: tuple[FastAPI, AsyncClient]) -> None:
    _, client = jobs_app
    alice = await signed_up(client, ALICE)
    for _ in range(2):
        await export(client, alice)
    first = await client.get(JOBS, params={"limit": 1}, headers=alice)
    last = await client.get(JOBS, params={"limit": 1, "offset": 1}, headers=alice)
    assert first.json()["total"] == 2
    assert first.headers["link"].endswith('rel="next"')
    assert "offset=1" in first.headers["link"]
    assert "link" not in last.headers


def stems(directory: Path) -> list[str]:
    """The names of the files in `directory`, without their suffix."""
    return sorted(path.stem for path in directory.iterdir())


def modes(directory: Path) -> tuple[int, list[int]]:
    """The permission bits of a directory and of each file in it."""
    files = [stat.S_IMODE(path.stat().st_mode) for path in directory.iterdir()]
    return stat.S_IMODE(directory.stat().st_mode), files


async def test_only_the_owner_and_superusers_see_a_job(
    jobs_app: tuple[FastAPI, AsyncClient],
) -> None:
    app, client = jobs_app
    alice, bob = await signed_up(client, ALICE), await signed_up(client, BOB)
    admin = await signed_up(client, ADMIN)
    await make_superuser(app, ADMIN)
    job = await export(client, alice)

    for path in (job["location"], f"{job['location']}/result"):
        assert_problem(await client.get(path, headers=bob), 404, "job_not_found")
    assert (await client.get(JOBS, headers=bob)).json()["items"] == []
    mine = (await client.get(JOBS, headers=alice)).json()
    assert [j["id"] for j in mine["items"]] == [job["id"]]
    everyone = (await client.get(JOBS, params={"status": "succeeded"}, headers=admin)).json()
    assert job["id"] in [j["id"] for j in everyone["items"]]
    failed = (await client.get(JOBS, params={"status": "failed"}, headers=admin)).json()
    assert job["id"] not in [j["id"] for j in failed["items"]]
    assert (await client.get(job["location"], headers=admin)).status_code == 200
    assert_problem(await client.get(JOBS), 401)


async def test_a_job_without_a_file_has_no_result_to_download(
    jobs_app: tuple[FastAPI, AsyncClient],
) -> None:
    _, client = jobs_app
    alice = await signed_up(client, ALICE)
    response = await client.post("/api/v1/auth/verify-email/request", headers=alice)
    assert response.status_code == 202
    [mail_job] = (await client.get(JOBS, headers=alice)).json()["items"]
    assert mail_job["task"] == "send_email"
    assert mail_job["status"] == "succeeded"
    assert mail_job["result_url"] is None
    result = await client.get(f"{JOBS}/{mail_job['id']}/result", headers=alice)
    assert_problem(result, 404, "job_result_not_found")


async def test_a_second_export_while_one_waits_answers_the_same_job(
    jobs_app: tuple[FastAPI, AsyncClient],
) -> None:
    app, client = jobs_app
    alice = await signed_up(client, ALICE)
    # Nothing runs the jobs: each waits in the queue.
    resources_of(app).jobs.consume_with(_never_runs)
    first, second = await export(client, alice), await export(client, alice)
    assert first["id"] == second["id"]
    result = await client.get(f"{first['location']}/result", headers=alice)
    assert_problem(result, 409, "job_result_not_ready")


async def _never_runs(job_id: str) -> None:
    """A consumer that takes jobs and does nothing: they stay queued."""


async def test_a_new_export_replaces_the_previous_file(
    jobs_app: tuple[FastAPI, AsyncClient], results_dir: Path
) -> None:
    _, client = jobs_app
    alice = await signed_up(client, ALICE)
    first, second = await export(client, alice), await export(client, alice)
    assert first["id"] != second["id"]  # the first had finished: a new export
    assert modes(results_dir)[1] == [0o600]  # one file: the newest
    old = (await client.get(first["location"], headers=alice)).json()
    assert old["status"] == "succeeded"
    assert old["result_url"] is None
    result = await client.get(f"{first['location']}/result", headers=alice)
    assert_problem(result, 404, "job_result_not_found")
    new = (await client.get(second["location"], headers=alice)).json()
    assert (await client.get(new["result_url"], headers=alice)).status_code == 200


# Each would make Starlette's FileResponse answer otherwise than the document's 200: a 206
# (one range, or multipart/byteranges for several), a 416, or a text/plain 400.
RANGES = {
    "one-range": {"Range": "bytes=0-9"},
    "two-ranges": {"Range": "bytes=0-4,10-19"},
    "past-the-end": {"Range": "bytes=99999-"},
    "malformed": {"Range": "bytes=abc"},
    "other-unit": {"Range": "items=0-1"},
    "if-range": {"Range": "bytes=0-9", "If-Range": "Thu, 01 Jan 1970 00:00:00 GMT"},
}


@pytest.mark.parametrize("headers", list(RANGES.values()), ids=list(RANGES))
async def test_a_result_file_downloads_whole_whatever_range_is_asked(
    jobs_app: tuple[FastAPI, AsyncClient], headers: dict[str, str]
) -> None:
    _, client = jobs_app
    alice = await signed_up(client, ALICE)
    job = (await client.get((await export(client, alice))["location"], headers=alice)).json()
    whole = await client.get(job["result_url"], headers=alice)

    download = await client.get(job["result_url"], headers={**alice, **headers})
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/json"
    assert download.headers["accept-ranges"] == "none"
    assert "content-range" not in download.headers
    assert download.content == whole.content
    assert json.loads(download.content)["profile"]["email"] == ALICE


async def _exported(client: AsyncClient, headers: dict[str, str], items: int = 0) -> dict[str, str]:
    """The succeeded job of a new export of `items` items."""
    for n in range(items):
        await create_item(client, headers, title=f"Item {n}")
    job = (await client.get((await export(client, headers))["location"], headers=headers)).json()
    assert job["status"] == "succeeded", job
    return dict(job)


async def test_a_result_held_is_not_sent_again(jobs_app: tuple[FastAPI, AsyncClient]) -> None:
    _, client = jobs_app
    alice = await signed_up(client, ALICE)
    job = await _exported(client, alice)
    first = await client.get(job["result_url"], headers=alice)
    conditions = {
        "If-None-Match": first.headers["etag"],
        "If-Modified-Since": first.headers["last-modified"],
    }
    for name, value in conditions.items():
        again = await client.get(job["result_url"], headers={**alice, name: value})
        assert again.status_code == 304, name
        assert again.content == b""
        assert again.headers["etag"] == first.headers["etag"]


async def test_the_head_of_a_result_answers_like_its_get(
    jobs_app: tuple[FastAPI, AsyncClient],
) -> None:
    _, client = jobs_app
    alice = await signed_up(client, ALICE)
    job = await _exported(client, alice, items=30)  # over 1 KiB: the GET goes gzipped
    asked = {**alice, "Accept-Encoding": "gzip"}
    get = await client.get(job["result_url"], headers=asked)
    head = await client.head(job["result_url"], headers=asked)
    assert (get.status_code, head.status_code) == (200, 200)
    assert get.headers["content-encoding"] == "gzip"
    for name in ("content-encoding", "vary", "content-length", "etag", "content-disposition"):
        assert head.headers.get(name) == get.headers.get(name), name


async def test_a_result_removed_while_it_is_served_still_downloads_whole(
    jobs_app: tuple[FastAPI, AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A newer export's success, or the purge, may remove the file once the route found it."""
    _, client = jobs_app
    alice = await signed_up(client, ALICE)
    job = await _exported(client, alice, items=2)
    found = open_download

    async def found_then_removed(path: Path) -> OpenedFile | None:
        opened = await found(path)
        await anyio.Path(path).unlink(missing_ok=True)
        return opened

    monkeypatch.setattr(jobs_router, "open_download", found_then_removed)
    response = await client.get(job["result_url"], headers=alice)
    assert response.status_code == 200, response.text
    assert len(json.loads(response.content)["items"]) == 2
    gone = await client.get(job["result_url"], headers=alice)
    assert_problem(gone, 404, "job_result_not_found")


@pytest.mark.parametrize("by", ["owner", "superuser"])
async def test_deleting_an_account_deletes_its_result_files(
    jobs_app: tuple[FastAPI, AsyncClient], results_dir: Path, by: str
) -> None:
    """An export holds the account's profile and items: it goes with the account."""
    app, client = jobs_app
    alice, bob = await signed_up(client, ALICE), await signed_up(client, BOB)
    kept = await _exported(client, bob)
    await _exported(client, alice, items=2)
    assert len(stems(results_dir)) == 2
    proof = {"current_password": DEFAULT_PASSWORD}
    if by == "owner":
        deleted = await client.request("DELETE", "/api/v1/users/me", json=proof, headers=alice)
    else:
        admin = await signed_up(client, ADMIN)
        await make_superuser(app, ADMIN)
        me = (await client.get("/api/v1/users/me", headers=alice)).json()
        path = f"/api/v1/users/{me['id']}"
        deleted = await client.request("DELETE", path, json=proof, headers=admin)
    assert deleted.status_code == 204, deleted.text
    assert stems(results_dir) == [kept["id"]]
