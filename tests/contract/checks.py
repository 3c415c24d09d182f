"""Checks of our own, beside schemathesis' built-in ones."""

from typing import Any

import schemathesis

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_MEMBERS = ("type", "title", "status", "code")


def _documented_as_problem(case: schemathesis.Case[Any], status: int) -> bool:
    """Whether the document promises a problem for `status` (readiness 503 is a report)."""
    documented = case.operation.definition.raw.get("responses", {}).get(str(status))
    return documented is None or PROBLEM_MEDIA_TYPE in documented.get("content", {})


@schemathesis.check
def problem_details(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """Every error is an RFC 9457 problem whose `status` is the response's."""
    if response.status_code < 400 or not _documented_as_problem(case, response.status_code):
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.split(";")[0].strip() == PROBLEM_MEDIA_TYPE, (
        f"{response.status_code} with Content-Type {content_type!r}, not problem+json"
    )
    if response.request.method == "HEAD":
        return None
    body = response.json()
    missing = [name for name in PROBLEM_MEMBERS if name not in body]
    assert not missing, f"problem without {missing}"
    assert body["status"] == response.status_code, "problem status differs from the response's"
    return True
