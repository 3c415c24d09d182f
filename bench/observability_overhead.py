"""Observability overhead: GET /api/v1/meta on the full stack without metrics, with metrics,
and with metrics and tracing (sampled at 10%, spans exported to an OTLP receiver on loopback).

The three run on the same server (uvicorn, one worker, uvloop, httptools) in one run, each twice
in turn, loaded by `wrk` on loopback like bench/middleware_overhead.py (access log on, proxy
headers trusted, rate limiting in memory, a random client address per request). The better of
each pair counts: the machine is shared, and noise only ever slows a run down. Prints one JSON
line with the rates and the cost of each addition.

    uv run python bench/observability_overhead.py            # needs wrk (apt-get install wrk)

Target (docs/benchmarks.md): metrics cost <= 5% of full-stack throughput.
"""

import argparse
import json
import os
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import servers
from middleware_overhead import PATH, behind_a_balancer, measure

TARGET_METRICS_COST = 0.05


class Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that accepts every export and keeps nothing."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def variants(base: dict[str, str], collector: str) -> dict[str, dict[str, str]]:
    return {
        "no_metrics": {**base, "METRICS_ENABLED": "false"},
        "metrics": {**base, "METRICS_ENABLED": "true"},
        "metrics_and_tracing": {
            **base,
            "METRICS_ENABLED": "true",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.1",
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    collector = f"http://127.0.0.1:{sink.server_address[1]}"
    rates: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        unset = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "METRICS_"))}
        base, script = behind_a_balancer(tmp, unset)
        for _ in range(args.rounds):
            for name, env in variants(base, collector).items():
                rates.setdefault(name, []).append(measure(servers.APP, env, args, script))
    sink.shutdown()
    best = {name: max(values) for name, values in rates.items()}
    metrics_cost = 1 - best["metrics"] / best["no_metrics"]
    tracing_cost = 1 - best["metrics_and_tracing"] / best["metrics"]
    print(json.dumps({
        "benchmark": "observability_overhead", "endpoint": PATH, "workers": 1,
        "connections": args.connections, "seconds": args.seconds, "rounds": args.rounds,
        "rps": {name: [round(v) for v in values] for name, values in rates.items()},
        "metrics_cost": round(metrics_cost, 3),
        "tracing_10pct_cost_over_metrics": round(tracing_cost, 3),
        "target_metrics_cost": TARGET_METRICS_COST,
    }))  # fmt: skip
    sys.exit(0 if metrics_cost <= TARGET_METRICS_COST else 1)


if __name__ == "__main__":
    main()
