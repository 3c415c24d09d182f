"""Deleting an account, and clearing what it leaves outside the database once that commits."""

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import BackgroundTasks, Depends
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import flows
from app.auth.deps import Principal
from app.auth.proof import IdentityCheck, IdentityCheckDep
from app.deps import CacheDep, SessionDep, SettingsDep
from app.infra.cache import Cache
from app.jobs import results
from app.users import cache as users_cache
from app.users.models import User


@dataclass(frozen=True, slots=True)
class AccountDeletion:
    """Deletes an account for the request (`flows.delete_account`), then clears its traces.

    Its cached copies go at once and again once the response is sent; its jobs' result files
    (its profile and items, in an export) once the response is sent, after the commit. A
    file a crash left behind is an orphan the hourly purge removes (docs/jobs.md).
    """

    session: AsyncSession
    identity: IdentityCheck
    cache: Cache
    background: BackgroundTasks
    results_dir: Path

    async def __call__(
        self, principal: Principal, user: User, current_password: str | None
    ) -> None:
        """Delete `user`'s account as `principal` asked, proven with `current_password`."""
        user_id = user.id
        deleted = await flows.delete_account(
            session=self.session,
            identity=self.identity,
            principal=principal,
            user=user,
            current_password=current_password,
        )
        await users_cache.forget_account(self.cache, self.background, user_id, deleted.item_ids)
        self.background.add_task(results.remove, self.results_dir, deleted.result_files)


async def get_account_deletion(
    session: SessionDep,
    identity: IdentityCheckDep,
    cache: CacheDep,
    background: BackgroundTasks,
    settings: SettingsDep,
) -> AccountDeletion:
    """Return the request's account deletion."""
    directory = Path(settings.jobs.results_dir)
    return AccountDeletion(session, identity, cache, background, directory)


AccountDeletionDep = Annotated[AccountDeletion, Depends(get_account_deletion)]
