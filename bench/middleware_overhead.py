"""Middleware overhead: GET /api/v1/meta through the full default stack vs bare FastAPI.

Both run on the same server (uvicorn, one worker, uvloop, httptools), one after the other in
one run, loaded by `wrk` on loopback. The full stack runs as behind a load balancer: access log
on (JSON lines to a pipe that is drained), proxy headers trusted from loopback, and the rate
limiter on with in-memory storage and its default limits. Each request comes from a random
client address (`X-Forwarded-For`), as real traffic does, so nothing is refused and every
request pays for a real quota check. Prints one JSON line with both rates and their ratio.

    uv run python bench/middleware_overhead.py            # needs wrk (apt-get install wrk)

Target (docs/benchmarks.md): full >= 70% of bare FastAPI.
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import servers

PATH = "/api/v1/meta"


# Addresses from the documentation ranges of RFC 5737, in a header only: no traffic goes there.
RANDOM_CLIENT = """
request = function()
  local ip = "198.51." .. math.random(0, 255) .. "." .. math.random(1, 254)
  return wrk.format("GET", nil, {["X-Forwarded-For"] = ip})
end
"""


def measure(
    target: list[str], env: dict[str, str], args: argparse.Namespace, script: Path
) -> float:
    """Requests per second of `target` under the random-client load."""
    with servers.running(target, env, ready_path=PATH) as port:
        return servers.requests_per_second(
            port, PATH, seconds=args.seconds, connections=args.connections, script=script
        )


def behind_a_balancer(tmp: str, environ: dict[str, str]) -> tuple[dict[str, str], Path]:
    """The full stack's environment as behind a load balancer, and the random-client script."""
    env = {
        **environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
        "LOG_FORMAT": "json",
        "RATE_LIMIT_ENABLED": "true",
        "TRUST_PROXY_HEADERS": "true",
        "PYTHONPATH": str(servers.ROOT / "bench"),
    }
    script = Path(tmp) / "random_client.lua"
    script.write_text(RANDOM_CLIENT)
    return env, script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env, script = behind_a_balancer(tmp, dict(os.environ))
        full = measure(servers.APP, env, args, script)
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
