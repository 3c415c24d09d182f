"""Every operation of the OpenAPI document, fuzzed with every schemathesis check, as each caller.

The operations come from the schema itself: a route added later is covered without a change here.
"""

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, load_all_checks

from tests.contract.checks import problem_details
from tests.contract.conftest import APP, MAX_EXAMPLES, Identity

# Loaded from the app itself, which then answers every call in-process.
schema = schemathesis.openapi.from_dict(APP.openapi())
schema.app = APP

load_all_checks()
# Every built-in check, the easily forgotten ones included, and ours.
ALL_CHECKS = [*CHECKS.get_all(), problem_details]
FUZZ = settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


def _call(case: schemathesis.Case, who: Identity) -> None:
    case.call_and_validate(headers=who.headers, checks=ALL_CHECKS)


@schema.parametrize()
@FUZZ
def test_as_user(case: schemathesis.Case, identities: dict[str, Identity]) -> None:
    _call(case, identities["user"])


@schema.parametrize()
@FUZZ
def test_as_narrow_api_key(case: schemathesis.Case, identities: dict[str, Identity]) -> None:
    _call(case, identities["api_key"])


@schema.parametrize()
@FUZZ
def test_as_superuser(case: schemathesis.Case, identities: dict[str, Identity]) -> None:
    _call(case, identities["superuser"])
