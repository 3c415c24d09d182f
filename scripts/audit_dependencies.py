"""Audit every locked dependency for known vulnerabilities with pip-audit.

The requirements come from `uv.lock` (`make audit` exports every group, exact versions).
pip-audit asks the PyPI JSON API, then OSV, about each package; a package that neither
answered for was NOT audited, although pip-audit still says "No known vulnerabilities found".
So this script reads its JSON report and decides:

- a known vulnerability: exit 1, always;
- packages that could not be audited (the vulnerability service is unreachable): exit 2,
  unless AUDIT_UNREACHABLE=warn, which prints a warning and exits 0 (for machines that reach
  only a package mirror; set in .ci/run only where that is so);
- otherwise exit 0.

A vulnerability that does not apply is ignored by adding its id to IGNORED with the reason.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
SERVICES = ("pypi", "osv")
# Vulnerability id -> why it does not apply to this project.
IGNORED: dict[str, str] = {}


def audit(requirements: Path, service: str) -> dict[str, Any]:
    """pip-audit's JSON report for the requirements, from one vulnerability service."""
    command = [str(BIN / "pip-audit"), "--requirement", str(requirements), "--no-deps"]
    command += ["--disable-pip", "--format", "json", "--progress-spinner", "off"]
    command += ["--vulnerability-service", service, "--timeout", "15"]
    for vulnerability in IGNORED:
        command += ["--ignore-vuln", vulnerability]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    try:
        report: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:  # the service failed outright (pip-audit printed a traceback)
        return {"dependencies": [], "error": result.stderr.strip().splitlines()[-1:]}
    return report


def audited(report: dict[str, Any]) -> int:
    """How many packages the report really audited."""
    return sum(1 for dep in report.get("dependencies", []) if not dep.get("skip_reason"))


def verdict(report: dict[str, Any], unreachable: str) -> tuple[int, list[str]]:
    """Exit code and lines to print for a report: findings fail, unaudited packages may warn."""
    dependencies = report.get("dependencies", [])
    findings = [
        f"{dep['name']} {dep['version']}: {vuln['id']} "
        f"(fixed in {', '.join(vuln['fix_versions']) or 'no release yet'})"
        for dep in dependencies
        for vuln in dep.get("vulns", [])
    ]
    if findings:
        return 1, ["Known vulnerabilities:", *findings]
    skipped = sorted(dep["name"] for dep in dependencies if dep.get("skip_reason"))
    if skipped or not dependencies:
        count = len(skipped) if dependencies else "all"
        message = f"{count} packages could not be audited (vulnerability service unreachable?)"
        if unreachable == "warn":
            return 0, [f"WARNING: {message}; AUDIT_UNREACHABLE=warn lets this pass."]
        return 2, [f"{message}; set AUDIT_UNREACHABLE=warn where no service is reachable."]
    return 0, [f"{len(dependencies)} packages audited: no known vulnerabilities."]


def main(argv: list[str]) -> int:
    """Audit the requirements file named in `argv` with the first service that answers."""
    if len(argv) != 1:
        print("usage: audit_dependencies.py REQUIREMENTS (from `uv export`)", file=sys.stderr)
        return 2
    requirements = Path(argv[0])
    unreachable = os.environ.get("AUDIT_UNREACHABLE", "fail")
    reports = []
    for service in SERVICES:
        reports.append(audit(requirements, service))
        if audited(reports[-1]) == len(reports[-1]["dependencies"]) > 0:
            break
    code, lines = verdict(max(reports, key=audited), unreachable)
    print("\n".join(lines), file=sys.stderr if code else sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
