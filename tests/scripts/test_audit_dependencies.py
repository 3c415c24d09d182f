"""The dependency audit fails on findings and never passes an audit that did not happen."""

from typing import Any

import pytest
from scripts.audit_dependencies import verdict

AUDITED = {"name": "fastapi", "version": "0.165.0", "vulns": []}
SKIPPED = {"name": "httpx2", "version": "2.16.0", "skip_reason": "Dependency not found on PyPI"}
VULNERABLE = {
    "name": "jinja2",
    "version": "3.1.2",
    "vulns": [{"id": "GHSA-h5c8-rqwp-cp95", "fix_versions": ["3.1.3"], "aliases": []}],
}


def report(*dependencies: dict[str, Any]) -> dict[str, Any]:
    return {"dependencies": list(dependencies), "fixes": []}


def test_a_clean_audit_passes() -> None:
    code, lines = verdict(report(AUDITED), "fail")
    assert code == 0
    assert "1 packages audited" in lines[0]


@pytest.mark.parametrize("unreachable", ["fail", "warn"])
def test_a_finding_fails_even_when_unreachable_may_warn(unreachable: str) -> None:
    code, lines = verdict(report(AUDITED, SKIPPED, VULNERABLE), unreachable)
    assert code == 1
    assert "jinja2 3.1.2: GHSA-h5c8-rqwp-cp95 (fixed in 3.1.3)" in lines


@pytest.mark.parametrize(
    "dependencies",
    [(AUDITED, SKIPPED), ()],  # some packages unaudited; the service failed outright
)
def test_an_incomplete_audit_fails_unless_told_to_warn(
    dependencies: tuple[dict[str, Any], ...],
) -> None:
    code, lines = verdict(report(*dependencies), "fail")
    assert code == 2
    assert "could not be audited" in lines[0]
    code, lines = verdict(report(*dependencies), "warn")
    assert code == 0
    assert lines[0].startswith("WARNING")
