"""The pump: fire cron schedules as jobs and send due jobs, every few seconds.

It runs in the scheduler process (Redis broker), or in the web process (embedded mode).
Each cron slot becomes one job whose dedupe key names the slot, so several schedulers
(replicas, or web workers in embedded mode) still run each slot once.
"""

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from cronsim import CronSim
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.base import utcnow
from app.infra.jobs import JobQueue
from app.jobs import dispatcher
from app.jobs import service as jobs_service

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Schedule:
    """A task to enqueue at every time a cron expression names (5 fields, or 6 with seconds)."""

    cron: str
    task: str
    max_attempts: int
    args: dict[str, Any] = field(default_factory=dict)

    def latest_slot(self, after: datetime, until: datetime) -> datetime | None:
        """The last time the expression names in (`after`, `until`], or None."""
        latest = None
        for slot in CronSim(self.cron, after):
            if slot > until:
                break
            latest = slot  # missed slots collapse into one run
        return latest


async def fire(
    factory: async_sessionmaker[AsyncSession],
    schedules: Sequence[Schedule],
    *,
    after: datetime,
    until: datetime,
) -> int:
    """Enqueue each schedule's latest slot in (`after`, `until`]; return how many were new."""
    fired = 0
    for schedule in schedules:
        slot = schedule.latest_slot(after, until)
        if slot is None:
            continue
        async with factory() as session:
            job = await jobs_service.create_once(
                session=session,
                task=schedule.task,
                args=schedule.args,
                max_attempts=schedule.max_attempts,
                dedupe_key=f"{schedule.task}@{slot.isoformat()}",
            )
            await session.commit()
        fired += job is not None
    return fired


@dataclass
class Pump:
    """Fires schedules and dispatches due jobs until cancelled; `nudge` wakes it early."""

    factory: async_sessionmaker[AsyncSession]
    queue: JobQueue
    schedules: Sequence[Schedule]
    interval: float
    redispatch_seconds: float
    nudge: asyncio.Event = field(default_factory=asyncio.Event)

    async def round(self, after: datetime) -> datetime:
        """One round; return the time the next round's schedules start after."""
        now = utcnow()
        await fire(self.factory, self.schedules, after=after, until=now)
        while (
            await dispatcher.dispatch(
                self.factory, self.queue, redispatch_seconds=self.redispatch_seconds
            )
            == dispatcher.BATCH
        ):
            pass  # a backlog: keep sending until it is gone
        return now

    async def run(self) -> None:
        """Run rounds every `interval` seconds; a failing round is logged and retried."""
        after = utcnow()
        while True:
            try:
                after = await self.round(after)
            except Exception as exc:  # noqa: BLE001 - the database may be down for a while
                log.warning("job_pump_failed", error=type(exc).__name__)
            self.nudge.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self.nudge.wait()
