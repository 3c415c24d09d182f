"""Job API schemas."""

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.db.pagination import Page, PageQuery
from app.jobs.models import Job, JobStatus


class JobRead(BaseModel):
    """A job as its owner (or a superuser) sees it; never its arguments."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    task: str
    status: JobStatus
    attempts: int = Field(description="Attempts started so far.")
    max_attempts: int
    result: dict[str, Any] | None = Field(
        description="The job's result, once it succeeded; null for credentials without the "
        "scopes it needs (an export's: `users:read` and `items:read`)."
    )
    error: str | None = Field(description="Why the last attempt failed.")
    result_url: str | None = Field(
        default=None,
        description="Where the result file downloads from, when there is one and the "
        "credentials hold the scopes it needs.",
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job, *, result_url: str | None) -> "JobRead":
        """The view of `job`, linking its result file when it has one."""
        link = result_url if job.has_file and job.status == JobStatus.SUCCEEDED else None
        return cls.model_validate(job).model_copy(update={"result_url": link})


class JobQuery(PageQuery):
    """Offset paging, and an optional status to keep."""

    status: JobStatus | None = None


class JobPage(Page[JobRead]):
    """A page of jobs, newest first."""
