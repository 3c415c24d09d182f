"""The Markdown table `bench/run.py` prints and writes to bench/results/latest.md."""

import argparse
import os
import platform
import statistics
from datetime import UTC, datetime
from typing import Any

from servers import Load

# The least share of a baseline's rate the full stack must reach (docs/benchmarks.md).
TARGETS = {"bare": 0.75, "bare+orm": 0.8}
LIMITER_TARGET = 0.05


def _median(loads: list[Load], field: str) -> float:
    return float(statistics.median(getattr(load, field) for load in loads))


def _share(part: float, whole: float) -> float:
    return part / whole if whole else float("nan")


def _row(label: str, name: str, loads: list[Load], baseline: list[Load] | None) -> str:
    rps = _median(loads, "rps")
    if baseline is None:
        ratio = "—"
    else:
        share = _share(rps, _median(baseline, "rps"))
        target = TARGETS.get(name)
        ratio = f"{share:.2f}" + (f" (≥ {target})" if target else "")
    return (
        f"| {label} | {name} | {rps:,.0f} | {_median(loads, 'p50_ms'):.1f} | "
        f"{_median(loads, 'p99_ms'):.1f} | {sum(load.errors for load in loads)} | "
        f"{_median(loads, 'cpu_us'):,.0f} | {ratio} |"
    )


def render(
    rows: list[tuple[str, str, str, list[str], str]],
    loads: dict[tuple[str, str], list[Load]],
    extras: dict[str, Any],
    args: argparse.Namespace,
) -> str:
    """The whole report: conditions, the table, the limiter's cost, storm and memory."""
    load_average = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    lines = [
        "# Benchmark results",
        "",
        (
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {platform.python_implementation()} "
            f"{platform.python_version()} · {os.cpu_count()} CPUs · load average {load_average}"
            f" at the end · server `{args.server}`, one worker pinned to CPU 0 · wrk -t1 "
            f"-c{args.connections}, {args.rounds} interleaved rounds of {args.seconds:g} s "
            "(medians)"
        ),
        "",
        (
            "Ratio: this server's req/s ÷ the row's baseline (bare FastAPI, or bare FastAPI + "
            "SQLAlchemy ORM); `CPU µs` is the server's CPU time per request."
        ),
        "",
        "| route | server | req/s | p50 ms | p99 ms | errors | CPU µs | ratio (target) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, _, _, mine, baseline in rows:
        lines.append(_row(label, baseline, loads[label, baseline], None))
        for name in mine:
            target = baseline if name in ("ours", "ours+cache") else None
            row = _row(label, name, loads[label, name], loads[label, baseline])
            lines.append(row if target else row.replace(f" (≥ {TARGETS[baseline]})", ""))
    lines += _limiter(loads), ""
    lines += _before(rows, loads)
    if "storm" in extras:
        storm = extras["storm"]
        lines.append(
            f"- Login storm ({storm['storm_concurrency']} logins in flight): "
            f"`GET /api/v1/health/live` p99 {storm['probe_p99_ms']:.1f} ms "
            f"(target < 50), p50 {storm['probe_p50_ms']:.1f} ms, "
            f"{storm['logins_per_s']} logins/s."
        )
    if "rss" in extras:
        at_20k, at_100k = extras["rss"]
        lines.append(
            f"- RSS of `ours` after 20k requests {at_20k:.1f} MiB, after 100k {at_100k:.1f} MiB "
            f"({(at_100k / at_20k - 1) * 100:+.1f}%, target within ±10%)."
        )
    return "\n".join(lines) + "\n"


def _limiter(loads: dict[tuple[str, str], list[Load]]) -> str:
    label = "GET /api/v1/users/me"
    without = _median(loads[label, "ours-limiter"], "rps")
    costs = [
        f"{where} {1 - _share(_median(loads[label, name], 'rps'), without):.1%}"
        for where, name in (("in memory", "ours"), ("in Redis", "ours+redis"))
    ]
    return (
        f"- Rate limiter's cost on `{label}` (1 - with ÷ without): {', '.join(costs)} "
        f"(target ≤ {LIMITER_TARGET:.0%})."
    )


def _before(
    rows: list[tuple[str, str, str, list[str], str]], loads: dict[tuple[str, str], list[Load]]
) -> list[str]:
    found = []
    for label, _, _, mine, _ in rows:
        if "before" in mine:
            ours, before = (_median(loads[label, name], "rps") for name in ("ours", "before"))
            found.append(f"{label} {_share(ours, before):.2f}")
    return [f"- `ours` ÷ `before`: {'; '.join(found)}.", ""] if found else []
