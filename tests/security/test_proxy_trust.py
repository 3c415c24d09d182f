"""Attack: forge `X-Forwarded-For` to pick your own client address. No start command trusts it."""

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.harness import free_port, make_settings

ROOT = Path(__file__).resolve().parents[2]
# A server start: uvicorn, or the FastAPI CLI's run and dev.
START = re.compile(r"\b(uvicorn\s+--factory|uvicorn\s+app\.|fastapi\s+(run|dev))\b")


def start_commands() -> list[tuple[str, str]]:
    """Every documented way to start the server: (file, the command as written)."""
    found = []
    texts = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").rglob("*.md")]
    for path in texts:
        spans = re.findall(r"`([^`\n]+)`", path.read_text())
        found += [(path.name, span) for span in spans if START.search(span)]
    makefile = (ROOT / "Makefile").read_text().splitlines()
    found += [("Makefile", line.strip()) for line in makefile if START.search(line)]
    return found


def test_every_documented_start_command_turns_the_servers_proxy_handling_off() -> None:
    commands = start_commands()
    assert len(commands) >= 4  # make run, make dev, and the README's three
    assert [c for c in commands if "--no-proxy-headers" not in c[1]] == []


def make_run_command(port: int) -> list[str]:
    """`make run`'s server command, as the Makefile writes it."""
    recipe = next(
        line.strip()
        for line in (ROOT / "Makefile").read_text().splitlines()
        if line.strip().startswith("$(RUN) app serve")
    )
    recipe = recipe.replace("$(RUN) app ", "app.cli ").replace("$(HOST)", "127.0.0.1")
    return [sys.executable, "-m", *recipe.replace("$(PORT)", str(port)).split()]


def test_the_documented_server_ignores_a_forged_forwarded_for(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRUST", "LOG_", "DATABASE"))}
    env.update(LOG_FORMAT="json", DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/app.db")
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(  # noqa: S603 - the Makefile's own command
        make_run_command(port), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        answer = _get_when_up(port, {"X-Forwarded-For": "10.9.9.9"})
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
    assert answer == 200
    written = (tmp_path / "server.log").read_text().splitlines()
    lines = [json.loads(text) for text in written if text.startswith("{")]
    clients = [line["client"] for line in lines if line.get("event") == "request"]
    assert clients
    assert set(clients) == {"127.0.0.1"}


def _get_when_up(port: int, headers: dict[str, str]) -> int:
    deadline = time.monotonic() + 30
    while True:
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/health", headers=headers)
            with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 - loopback
                return int(response.status)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_trusting_every_address_is_refused_in_production() -> None:
    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        make_settings(
            ENVIRONMENT="production",
            JWT_SECRET="0f" * 32,
            ALLOWED_HOSTS="api.example.com",
            TRUST_PROXY_HEADERS=True,
            TRUSTED_PROXIES="0.0.0.0/0",
        )
