"""The `export_user_data` job: a user's profile and items as one JSON file, written as it is read.

Items are read a page at a time and each page is written before the next is read, so the
file may be far larger than the memory the job uses.
"""

from pathlib import Path

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession

from app.items import service as items_service
from app.items.schemas import ItemQuery
from app.jobs import results
from app.jobs import service as jobs_service
from app.jobs.claims import Claim
from app.jobs.exceptions import PermanentJobError
from app.jobs.runner import Done, JobContext
from app.users import service as users_service
from app.users.models import User
from app.users.schemas import UserRead

EXPORT_USER_DATA = "export_user_data"
PAGE = 100


async def export_user_data(ctx: JobContext, held: Claim) -> Done:
    """Write the owner's profile and items to the job's result file; the result counts them."""
    directory = await anyio.to_thread.run_sync(results.results_dir, ctx.settings.jobs.results_dir)
    # Read without a transaction: on SQLite one would hold the write lock for the whole export.
    async with ctx.read_session_factory() as session:
        user = None
        if held.owner_id is not None:
            user = await users_service.get(session=session, user_id=held.owner_id)
        if user is None:
            raise PermanentJobError("The account to export no longer exists.")
        count = await _write(session, directory, held, user)
    async with ctx.session_factory() as session:
        # One export file per user: a new one replaces the older (the disk stays bounded).
        older = await jobs_service.drop_older_files(
            session=session, owner_id=user.id, task=EXPORT_USER_DATA, keep=held.job_id
        )
        await session.commit()
    await results.remove(directory, older)
    return Done(result={"items": count}, has_file=True)


async def _write(session: AsyncSession, directory: Path, held: Claim, user: User) -> int:
    """Write the profile and every item of `user` to the job's file; return how many items."""
    profile = UserRead.model_validate(user).model_dump_json().encode()
    count, cursor = 0, None
    async with results.writing(directory, held.job_id) as file:
        await file.write(b'{"profile":' + profile + b',"items":[')
        while True:
            query = ItemQuery(limit=PAGE, sort="created_at", cursor=cursor)
            page, _, cursor = await items_service.list_items(
                session=session, query=query, owner_id=user.id
            )
            rows = [item.model_dump_json().encode() for item in page]
            if rows:
                await file.write((b"," if count else b"") + b",".join(rows))
            count += len(rows)
            if cursor is None:
                break
        await file.write(b"]}")
    return count
