"""Errors of the jobs domain."""

import uuid

from app.core.errors import ConflictError, NotFoundError


class JobNotFound(NotFoundError):
    """No such job among those the caller may see (other users' jobs included)."""

    code = "job_not_found"
    title = "Job Not Found"

    def __init__(self, job_id: uuid.UUID) -> None:
        super().__init__(f"Job {job_id} was not found.")


class JobResultNotReady(ConflictError):
    """The job has not succeeded (yet), so it has no result to download."""

    code = "job_result_not_ready"
    title = "Job Result Not Ready"


class JobResultNotFound(NotFoundError):
    """The job has no file to download, or its file has expired."""

    code = "job_result_not_found"
    title = "Job Result Not Found"


class PermanentJobError(Exception):
    """A job that can never succeed (its user is gone): failed at once, never retried.

    The message is shown to the job's owner, so it must say nothing internal.
    """
