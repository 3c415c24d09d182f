"""Job endpoints: a job's status, the caller's jobs, and a job's result file."""

from pathlib import Path
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Header, Query, Request, Response

from app.auth.exceptions import InsufficientScope
from app.core.downloads import WholeFileResponse, open_download
from app.core.openapi import problem_responses, response_headers
from app.core.routing import StrictBodyRoute
from app.deps import SessionDep, SettingsDep
from app.jobs import results
from app.jobs import service as jobs_service
from app.jobs.deps import JobsReader, VisibleJobDep, may_read_result, result_scopes
from app.jobs.exceptions import JobResultNotFound, JobResultNotReady
from app.jobs.models import JobStatus
from app.jobs.schemas import JobPage, JobQuery, JobRead
from app.jobs.views import job_view

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/jobs", tags=["jobs"], route_class=StrictBodyRoute)

_VALIDATORS = {
    "ETag": {
        "description": "A weak tag of this version of the file: send it in If-None-Match.",
        "schema": {"type": "string"},
    },
    "Last-Modified": {
        "description": "When the file was written: send it in If-Modified-Since.",
        "schema": {"type": "string"},
    },
}
_FILE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The whole result file as a JSON attachment (a `Range` header is ignored).",
        "content": {"application/json": {"schema": {"type": "object"}}},
        "headers": {
            "Content-Disposition": {"schema": {"type": "string"}},
            "Accept-Ranges": {"description": "`none`.", "schema": {"type": "string"}},
            **_VALIDATORS,
        },
    },
    304: {
        "description": "Not Modified: the version you hold is the file's.",
        "headers": _VALIDATORS,
    },
}
IfNoneMatch = Annotated[
    str | None,
    Header(
        alias="If-None-Match",
        description="An ETag you hold: 304 without a body while the file is still that version.",
    ),
]
IfModifiedSince = Annotated[
    str | None,
    Header(
        alias="If-Modified-Since",
        description="An HTTP date: 304 unless the file was written after it (ignored with "
        "If-None-Match).",
    ),
]


@router.get(
    "", responses={200: response_headers("Link", required=False), **problem_responses(401, 403)}
)
async def list_jobs(
    principal: JobsReader,
    query: Annotated[JobQuery, Query()],
    session: SessionDep,
    request: Request,
    response: Response,
) -> JobPage:
    """List the caller's jobs, newest first (a superuser sees everyone's); filter by `status`."""
    user = principal.user
    jobs, total = await jobs_service.list_jobs(
        session=session,
        owner_id=None if user.is_superuser else user.id,
        status=query.status,
        limit=query.limit,
        offset=query.offset,
    )
    page = JobPage(
        items=[
            job_view(request, job, result_readable=may_read_result(principal, job)) for job in jobs
        ],
        total=total,
        limit=query.limit,
        offset=query.offset,
    )
    if link := page.next_link(request.url):
        response.headers["Link"] = link
    return page


@router.get("/{job_id}", responses=problem_responses(401, 403, 404))
async def read_job(visible: VisibleJobDep, request: Request) -> JobRead:
    """Return a job of the caller's (any job, for a superuser): its status, result or error.

    The result, and its file's link, only for credentials with the scopes the result needs.
    """
    return job_view(request, visible.job, result_readable=visible.result_readable)


@router.get(
    "/{job_id}/result",
    status_code=200,  # FastAPI reads it off the response class's constructor, which has none
    response_class=WholeFileResponse,
    responses=_FILE_RESPONSE | problem_responses(401, 403, 404, 409),
)
async def download_job_result(
    visible: VisibleJobDep,
    settings: SettingsDep,
    if_none_match: IfNoneMatch = None,
    if_modified_since: IfModifiedSince = None,
) -> WholeFileResponse:
    """Download the job's result file, streamed in chunks.

    403 for credentials without the scopes the result needs (an export's: `users:read` and
    `items:read`); 409 while the job has not succeeded; 404 when it has no file, or the file
    has expired; 304 to a client that holds this version (`If-None-Match`).
    """
    job = visible.job
    if not visible.result_readable:
        missing = ", ".join(sorted(result_scopes(job)))
        raise InsufficientScope(f"Reading this job's result takes the scope(s): {missing}.")
    if job.status != JobStatus.SUCCEEDED:
        raise JobResultNotReady(f"Job {job.id} is {job.status.value}; it has no result yet.")
    # Opened here, once: a file removed from now on (a newer export, the purge) is still read.
    opened = None
    if job.has_file:
        opened = await open_download(results.path_of(Path(settings.jobs.results_dir), job.id))
        if opened is None:  # every node must share JOBS_RESULTS_DIR: docs/jobs.md
            log.warning("job_result_file_missing", job_id=str(job.id))
    if opened is None:
        raise JobResultNotFound(f"Job {job.id} has no result file (it may have expired).")
    return WholeFileResponse(
        opened,
        media_type="application/json",
        filename=f"{job.task}-{job.id}.json",
        if_none_match=if_none_match,
        if_modified_since=if_modified_since,
    )
