"""Stateful runs: create, then read, change and delete what was created, following the links.

The links come from the document (`core/openapi.py` links every 201 to the operations on the
resource it made), so a resource added later is exercised the same way.
"""

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.transport import Response

from tests.contract.checks import problem_details
from tests.contract.conftest import MAX_EXAMPLES, Identity
from tests.contract.test_operations import schema

# Scenarios per run; each is a chain of up to six calls.
SCENARIOS = max(MAX_EXAMPLES // 10, 10)


@pytest.mark.parametrize("who", ["user", "superuser"])
def test_create_read_update_delete(who: str, identities: dict[str, Identity]) -> None:
    headers = identities[who].headers

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
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
