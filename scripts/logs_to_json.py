"""Turn the service's log stream into JSON: one array, or NDJSON, of its log records.

Reads a file, standard input or the output of a command, strips what container tools put in
front of each line (`api-1  | `, `[pod/api-7d9/api] `, a `docker logs -t` timestamp), keeps
the lines that are JSON objects and drops the rest (tracebacks a library printed, shell noise),
counting them. Blank lines are skipped without counting.

    docker compose logs --no-color api | python scripts/logs_to_json.py --out logs.json
    python scripts/logs_to_json.py --command "docker compose logs --no-color api" \\
        --request-id 3f2c... --format ndjson
    python scripts/logs_to_json.py app.log --tail 100 --dropped-out dropped.txt

Prints `kept N, dropped M` on standard error. Exits 1 when the command fails or a file
cannot be read, 0 otherwise (dropped lines are expected, not an error).
"""

import argparse
import io
import json
import shlex
import subprocess
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

# A JSON object starts within the first characters of a line, after any prefix.
PREFIX_SEARCH_CHARS = 200
_DECODER = json.JSONDecoder()


def parse_line(line: str) -> dict[str, Any] | None:
    """Return the JSON object the line holds after any prefix, or None when it holds none."""
    text = line.rstrip("\r\n")
    start = text.find("{", 0, PREFIX_SEARCH_CHARS)
    while start != -1:
        try:
            record, end = _DECODER.raw_decode(text, start)
        except ValueError:
            record, end = None, start
        if isinstance(record, dict) and not text[end:].strip():
            return record
        start = text.find("{", start + 1, PREFIX_SEARCH_CHARS)
    return None


@dataclass
class Result:
    """The records kept and the lines dropped."""

    records: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def convert(
    lines: Iterable[str], *, tail: int | None = None, request_id: str | None = None
) -> Result:
    """Keep the JSON records of `lines` (the last `tail`, those of one request if asked)."""
    records: deque[dict[str, Any]] = deque(maxlen=tail)
    result = Result()
    for line in lines:
        if not line.strip():
            continue
        record = parse_line(line)
        if record is None:
            result.dropped.append(line.rstrip("\r\n"))
        elif request_id is None or record.get("request_id") == request_id:
            records.append(record)
    result.records = list(records)
    return result


def render(records: list[dict[str, Any]], output_format: str) -> str:
    """Return the records as a JSON array or as NDJSON (one object per line)."""
    if output_format == "ndjson":
        return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    return json.dumps(records, ensure_ascii=False, indent=2) + "\n"


class CommandFailed(Exception):
    """The command that was to print the logs exited with an error."""


@contextmanager
def _source(args: argparse.Namespace) -> Iterator[Iterable[str]]:
    if args.command:
        process = subprocess.Popen(  # noqa: S603 - the operator's own command, without a shell
            shlex.split(args.command),
            stdout=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        assert process.stdout is not None  # noqa: S101 - stdout=PIPE
        try:
            yield process.stdout
        finally:
            process.stdout.close()
            if process.wait() != 0:
                raise CommandFailed(f"the command exited with status {process.returncode}")
    elif args.source == "-":
        # Bytes that are not UTF-8 (a binary dump, a cut multi-byte character) become U+FFFD.
        yield io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
    else:
        with Path(args.source).open(encoding="utf-8", errors="replace") as file:
            yield file


def _write(text: str, path: str | None, stdout: TextIO) -> None:
    if path is None:
        stdout.write(text)
    else:
        Path(path).write_text(text, encoding="utf-8")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default="-", help="a log file, or - for stdin")
    parser.add_argument(
        "--command", help='read what a command prints, e.g. "docker compose logs --no-color api"'
    )
    parser.add_argument("--format", choices=("array", "ndjson"), default="array")
    parser.add_argument("--out", help="write the records here instead of stdout")
    parser.add_argument("--dropped-out", help="write the dropped lines here, one per line")
    parser.add_argument("--tail", type=int, help="keep only the last N records")
    parser.add_argument("--request-id", help="keep only the records of this request")
    args = parser.parse_args(argv)
    if args.tail is not None and args.tail < 1:
        parser.error("--tail must be at least 1")
    if args.command and args.source != "-":
        parser.error("give a source file or --command, not both")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the tool; return the exit status."""
    args = _arguments(argv)
    try:
        with _source(args) as lines:
            result = convert(lines, tail=args.tail, request_id=args.request_id)
    except (OSError, CommandFailed) as exc:
        print(f"cannot read the logs: {exc}", file=sys.stderr)
        return 1
    _write(render(result.records, args.format), args.out, sys.stdout)
    if args.dropped_out is not None:
        _write("".join(line + "\n" for line in result.dropped), args.dropped_out, sys.stdout)
    print(f"kept {len(result.records)}, dropped {len(result.dropped)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
