"""The jobs table: the outbox a request writes in its own transaction, and each job's state."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UUIDPrimaryKeyMixin, utcnow


class JobStatus(StrEnum):
    """Where a job is: waiting (or waiting to be retried), running, or done either way."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Job(UUIDPrimaryKeyMixin, Base):
    """One job. A row exists only if the transaction that asked for it committed.

    The dispatcher sends `queued` rows that are due (`run_after`) and not sent lately
    (`dispatched_at`); a worker runs a row only after claiming it (`claim_token`, valid until
    `lease_until`), so a message delivered twice never runs the job twice at once.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        # The dispatcher's scan, and the list of one owner's jobs, newest first.
        Index("ix_jobs_status_run_after", "status", "run_after"),
        Index("ix_jobs_owner_id_created_at", "owner_id", "created_at"),
    )

    task: Mapped[str] = mapped_column(String(64))
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), default=None
    )
    status: Mapped[JobStatus] = mapped_column(
        Enum(JobStatus, name="job_status", native_enum=False, length=16,
             values_callable=lambda members: [m.value for m in members]),
        default=JobStatus.QUEUED,
    )  # fmt: skip
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=1)
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    has_file: Mapped[bool] = mapped_column(default=False)
    # What the result holds is other domains' data: reading it (the result, the file) takes
    # the scopes reading that data takes, so a key holding only `jobs:read` sees the status.
    # NULL: made by a release that did not know the column; its result needs every scope.
    read_scopes: Mapped[list[str] | None] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    request_id: Mapped[str | None] = mapped_column(String(128), default=None)
    traceparent: Mapped[str | None] = mapped_column(String(64), default=None)
    # Unique: asking twice for the same thing (a schedule slot, one mail) makes one job.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    run_after: Mapped[datetime] = mapped_column(default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    claim_token: Mapped[uuid.UUID | None] = mapped_column(default=None)
