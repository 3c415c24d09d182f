"""How a job is shown: the schema with absolute links, for this domain's routes and others'."""

from fastapi import Request

from app.core.urls import url_for
from app.jobs.models import Job
from app.jobs.schemas import JobRead


def job_view(request: Request, job: Job, *, result_readable: bool) -> JobRead:
    """The job as the API shows it, with the link to its result file if it has one.

    Without `result_readable` (the caller lacks the job's `read_scopes`) the result and its
    link are left out: the status is all the caller may see.
    """
    if not result_readable:
        return JobRead.of(job, result_url=None).model_copy(update={"result": None})
    url = url_for(request, "download_job_result", job_id=job.id)
    return JobRead.of(job, result_url=url)


def job_location(request: Request, job: Job) -> str:
    """The URL of the job's status resource (a 202's `Location`)."""
    return url_for(request, "read_job", job_id=job.id)
