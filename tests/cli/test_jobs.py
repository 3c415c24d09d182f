"""`app worker` and `app scheduler`: one line and exit 2 without a broker; help with examples.

The processes themselves (jobs run, SIGTERM, SIGKILL) are tested in tests/jobs/test_worker.py,
which starts them through this command.
"""

import pytest

from tests.cli.conftest import Run


@pytest.mark.parametrize("command", ["worker", "scheduler"])
def test_without_a_broker_it_says_so_in_one_line(run_cli: Run, command: str) -> None:
    outcome = run_cli(command)
    assert outcome.code == 2
    assert outcome.err.startswith("app: error: ")
    assert "REDIS_URL" in outcome.err
    assert len(outcome.err.strip().splitlines()) == 1
    assert "Traceback" not in outcome.err


@pytest.mark.parametrize("command", ["worker", "scheduler"])
def test_help_shows_examples(run_cli: Run, command: str) -> None:
    outcome = run_cli(command, "--help")
    assert outcome.code == 0
    assert f"app {command}" in outcome.out
    assert "--port" in outcome.out


def test_a_bad_concurrency_is_bad_usage(run_cli: Run) -> None:
    outcome = run_cli("worker", "--concurrency", "0")
    assert outcome.code == 2
    assert "concurrency" in outcome.err
