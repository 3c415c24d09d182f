"""The schemathesis CLI against the real server process, as a third party would run it."""

import subprocess
import sys
from pathlib import Path

from tests.identity import unique_email
from tests.live_server import live_server

ROOT = Path(__file__).resolve().parents[2]
CLI_EXAMPLES = 10  # per operation: the in-process runs go deeper; this proves the wiring
CLI_SECONDS = 900
# The one identity of the run must live through it: these end its session or account (the
# in-process runs in tests/contract cover them, each with identities of its own).
SESSION_ENDING = (
    "delete_me_api_v1_users_me_delete",
    "logout_all_api_v1_auth_logout_all_post",
    "change_password_api_v1_users_me_password_post",
)


def test_schemathesis_cli_finds_nothing(tmp_path: Path) -> None:
    with live_server(tmp_path) as server:
        token = server.sign_up(unique_email("cli"))
        command = [sys.executable, "-m", "schemathesis.cli"]
        command += ["--config-file", str(ROOT / "schemathesis.toml"), "--no-color", "run"]
        command += [f"{server.url}/openapi.json", "--checks", "all", "--seed", "14"]
        command += ["--max-examples", str(CLI_EXAMPLES), "-H", f"Authorization: Bearer {token}"]
        command += ["--report", "junit", "--report-dir", str(tmp_path / "report")]
        for operation_id in SESSION_ENDING:
            command += ["--exclude-operation-id", operation_id]
        finished = subprocess.run(  # noqa: S603 - fixed arguments
            command, capture_output=True, text=True, timeout=CLI_SECONDS, cwd=tmp_path, check=False
        )
    output = finished.stdout + finished.stderr
    (tmp_path / "schemathesis.txt").write_text(output)
    assert finished.returncode == 0, output[-20000:]
    assert "No issues found" in output or " passed" in output, output[-5000:]
