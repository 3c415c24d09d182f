"""scripts/logs_to_json.py on captured log samples, garbage lines included, run as a command."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "scripts" / "logs_to_json.py"
SAMPLES = Path(__file__).resolve().parent / "samples"
COMPOSE = SAMPLES / "compose.log"
KUBECTL = SAMPLES / "kubectl.log"
REQUEST = "0f1e2d3c-aaaa-4bbb-8ccc-000000000002"


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    """Run the tool with raw bytes on its standard input."""
    done = subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, str(TOOL), *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def records(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    parsed: list[dict[str, Any]] = json.loads(result.stdout)
    return parsed


def test_compose_logs_become_an_array_and_the_garbage_is_counted() -> None:
    result = run(str(COMPOSE))
    events = [record["event"] for record in records(result)]
    assert events == [
        "startup",
        "request",
        "write_conflict",
        "request",
        "db.slow_statement",
        "request",
    ]
    # The uvicorn banner, four traceback lines, a cut-off line and a JSON array.
    assert result.stderr.strip() == "kept 6, dropped 7"


def test_kubectl_prefixes_timestamps_and_binary_noise(tmp_path: Path) -> None:
    dropped = tmp_path / "dropped.txt"
    result = run("--dropped-out", str(dropped), stdin=KUBECTL.read_bytes())
    kept = records(result)
    assert [record.get("request_id") for record in kept] == [None, "k-1", "k-2"]
    assert result.stderr.strip() == "kept 3, dropped 2"
    lines = dropped.read_text().splitlines()
    assert len(lines) == 2
    assert "garbage" in lines[0]
    assert lines[1] == '{"event": "x"} trailing words'


def test_ndjson_tail_and_out(tmp_path: Path) -> None:
    out = tmp_path / "tail.ndjson"
    result = run(str(COMPOSE), "--format", "ndjson", "--tail", "2", "--out", str(out))
    assert result.returncode == 0
    assert result.stdout == ""
    lines = out.read_text().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["db.slow_statement", "request"]


def test_following_one_request() -> None:
    kept = records(run(str(COMPOSE), "--request-id", REQUEST))
    assert [(record["event"], record["logger"]) for record in kept] == [
        ("write_conflict", "app.core.problems"),
        ("request", "app.access"),
    ]
    assert kept[1]["user_id"] == "6a1b"


def test_reading_what_a_command_prints() -> None:
    command = f'{sys.executable} -c "import sys; sys.stdout.write(open(sys.argv[1]).read())"'
    result = run("--command", f"{command} {COMPOSE}", "--tail", "1")
    assert [record["status"] for record in records(result)] == [200]


def test_a_failing_command_or_a_missing_file_exits_non_zero(tmp_path: Path) -> None:
    failing = run("--command", f'{sys.executable} -c "raise SystemExit(3)"')
    missing = run(str(tmp_path / "absent.log"))
    assert failing.returncode == 1
    assert "exited with status 3" in failing.stderr
    assert missing.returncode == 1
    assert "cannot read the logs" in missing.stderr
    assert run("--tail", "0").returncode == 2
