"""Every operation of the OpenAPI document, fuzzed with every schemathesis check, as each caller.

The operations come from the schema itself: a route added later is covered without a change here.
Every built-in check runs (none is turned off in `schemathesis.toml`), and ours beside them.
"""

from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings

from tests.contract.checks import problem_details
from tests.contract.conftest import APP, MAX_EXAMPLES, OTHER_IDENTITY_EXAMPLES, Identity

CONFIG = Path(__file__).resolve().parents[2] / "schemathesis.toml"
# Loaded from the app itself, which then answers every call in-process.
schema = schemathesis.openapi.from_dict(APP.openapi(), config=schemathesis.Config.from_path(CONFIG))
schema.app = APP

FUZZ = settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
FUZZ_OTHERS = settings(FUZZ, max_examples=OTHER_IDENTITY_EXAMPLES)


def _call(case: schemathesis.Case[Any], who: Identity) -> None:
    case.call_and_validate(headers=who.headers, additional_checks=[problem_details])


@schema.parametrize()
@FUZZ
def test_as_user(case: schemathesis.Case[Any], identities: dict[str, Identity]) -> None:
    _call(case, identities["user"])


@schema.parametrize()
@FUZZ_OTHERS
def test_as_narrow_api_key(case: schemathesis.Case[Any], identities: dict[str, Identity]) -> None:
    _call(case, identities["api_key"])


@schema.parametrize()
@FUZZ_OTHERS
def test_as_superuser(case: schemathesis.Case[Any], identities: dict[str, Identity]) -> None:
    _call(case, identities["superuser"])
