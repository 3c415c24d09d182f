"""Middleware overhead: GET /api/v1/meta through the full default stack vs bare FastAPI.

Both run on the same server (uvicorn, one worker, uvloop, httptools), one after the other in
one run, loaded by `wrk` on loopback. The full stack runs as behind a load balancer: access log
on (JSON lines to a pipe that is drained), proxy headers trusted from loopback, and the rate
limiter on with in-memory storage and its default limits. Each request comes from a random
client address (`X-Forwarded-For`), as real traffic does, so nothing is refused and every
request pays for a real quota check. Prints one JSON line with both rates and their ratio.

    uv run python bench/middleware_overhead.py            # needs wrk (apt-get install wrk)

Target (DESIGN.md section 12 and the request pipeline issue): full >= 70% of bare FastAPI.
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATH = "/api/v1/meta"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def drain(stream: object) -> None:
    # Read the server's log pipe so writing logs never blocks the server.
    for _ in iter(stream.readline, b""):  # type: ignore[attr-defined]
        pass


def serve(target: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", *target, "--port", str(port), "--no-access-log",
               "--no-proxy-headers", "--loop", "uvloop", "--http", "httptools"]  # fmt: skip
    server = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    threading.Thread(target=drain, args=(server.stdout,), daemon=True).start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{PATH}", timeout=1):
                return server
        except OSError:
            time.sleep(0.1)
    server.terminate()
    raise RuntimeError(f"{target} did not start")


# Addresses from the documentation ranges of RFC 5737, in a header only: no traffic goes there.
RANDOM_CLIENT = """
request = function()
  local ip = "198.51." .. math.random(0, 255) .. "." .. math.random(1, 254)
  return wrk.format("GET", nil, {["X-Forwarded-For"] = ip})
end
"""


def requests_per_second(
    port: int, seconds: int, connections: int, script: Path, path: str = PATH
) -> float:
    """Load `path` with wrk (driven by the Lua `script`) and return the requests per second."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    url = f"http://127.0.0.1:{port}{path}"
    load = [wrk, "-t1", "-s", str(script), "--latency", url]
    subprocess.run([*load, "-c8", "-d2s"], capture_output=True, check=True)  # warm-up
    result = subprocess.run(
        [*load, f"-c{connections}", f"-d{seconds}s"], capture_output=True, text=True, check=True
    )
    if "Non-2xx" in result.stdout:
        raise RuntimeError("some responses were not 2xx:\n" + result.stdout)
    match = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    if match is None:
        raise RuntimeError(result.stdout)
    return float(match.group(1))


def measure(
    target: list[str], env: dict[str, str], args: argparse.Namespace, script: Path
) -> float:
    port = free_port()
    server = serve(target, env, port)
    try:
        return requests_per_second(port, args.seconds, args.connections, script)
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
            "LOG_FORMAT": "json",
            "RATE_LIMIT_ENABLED": "true",
            "TRUST_PROXY_HEADERS": "true",
            "PYTHONPATH": str(ROOT / "bench"),
        }
        script = Path(tmp) / "random_client.lua"
        script.write_text(RANDOM_CLIENT)
        full = measure(["--factory", "app.main:create_app"], env, args, script)
        bare = measure(["bare_app:app"], env, args, script)
    ratio = full / bare
    print(json.dumps({
        "benchmark": "middleware_overhead", "endpoint": PATH, "workers": 1,
        "connections": args.connections, "seconds": args.seconds,
        "full_stack_rps": round(full), "bare_fastapi_rps": round(bare),
        "ratio": round(ratio, 3), "target_ratio": 0.70,
    }))  # fmt: skip
    sys.exit(0 if ratio >= 0.70 else 1)


if __name__ == "__main__":
    main()
