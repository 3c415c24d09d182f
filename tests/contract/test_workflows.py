"""Stateful runs: create, then read, change and delete what was created, following the links.

The links come from the document (`core/openapi.py` links every 201 to the operations on the
resource it made), so a resource added later is exercised the same way.
"""

import asyncio
from datetime import datetime
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.transport import Response
from sqlalchemy import delete

from app.api_keys.models import ApiKey
from app.db.base import utcnow
from app.items.models import Item
from app.jobs.models import Job
from app.users.models import User
from tests.contract.checks import problem_details
from tests.contract.conftest import CONTRACT_DATABASE_URL, MAX_EXAMPLES, Identity
from tests.contract.test_operations import schema
from tests.migrations import test_engine as engine_for

# Scenarios per run; each is a chain of up to six calls.
SCENARIOS = max(MAX_EXAMPLES // 10, 10)


# What the lists a scenario may read hold (GET /api/v1/items, api-keys, jobs, users), rows
# before the users that own them.
LISTED = (Item, ApiKey, Job, User)


async def _forget_since(moment: datetime) -> None:
    engine = engine_for(CONTRACT_DATABASE_URL)
    try:
        async with engine.begin() as connection:
            for model in LISTED:
                await connection.execute(delete(model).where(model.created_at >= moment))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("who", ["user", "superuser"])
def test_create_read_update_delete(who: str, identities: dict[str, Identity]) -> None:
    headers = identities[who].headers
    began = utcnow()

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Each scenario starts from the same data. Which steps it may take depends on what
            # the lists answer: rows left by earlier scenarios would make the same choices lead
            # elsewhere, which Hypothesis reports as a flaky strategy definition.
            asyncio.run(_forget_since(began))

        def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
            return {"headers": headers}

        def validate_response(
            self,
            response: Response,
            case: schemathesis.Case[Any],
            additional_checks: Any = None,
            **kwargs: Any,
        ) -> None:
            super().validate_response(response, case, additional_checks=[problem_details], **kwargs)

    Workflow.run(
        settings=settings(
            max_examples=SCENARIOS,
            stateful_step_count=6,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )
