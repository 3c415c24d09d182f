"""Lint the SQL of every migration for locking hazards on PostgreSQL with squawk.

Each migration's offline SQL (`alembic upgrade <previous>:<revision> --sql` for a PostgreSQL
URL; nothing connects) goes to squawk one file per migration, the expand/contract examples
included. A migration that takes a long exclusive lock, rewrites a table, or waits for a lock
without a timeout fails `make check`; docs/migrations.md says how to write it instead.

Rules off for every migration, and why, are in EXCLUDED; a migration that must break a rule
names it in ACCEPTED with the reason.
"""

import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

ROOT = Path(__file__).resolve().parents[1]
VERSION_LOCATIONS = (
    ROOT / "migrations" / "versions",
    ROOT / "migrations" / "examples" / "expand_contract",
)
# The oldest PostgreSQL the project supports (CI runs 15; compose runs 18).
PG_VERSION = "15"
EXCLUDED = {
    # Lengths are part of the data model (API limits mirrored in the schema); widening a
    # VARCHAR later changes only the catalog on PostgreSQL, no rewrite, no long lock.
    "prefer-text-field": "VARCHAR(n) is deliberate",
    # Integer widths are sized to their values (counters, positions, HTTP statuses).
    "prefer-bigint-over-int": "sized to the value",
    "prefer-bigint-over-smallint": "sized to the value",
}
# Revision -> rules it may break, each with the reason.
ACCEPTED: dict[str, dict[str, str]] = {
    # Written before the first release: no deployment holds rows in these tables yet, so the
    # scans and exclusive locks below take no time. Released migrations are never rewritten.
    "0005_security": {
        "adding-not-nullable-field": "unreleased; tables empty everywhere",
        "ban-drop-default": "unreleased; no running code relies on the default",
        "constraint-missing-not-valid": "unreleased; tables empty everywhere",
        "adding-foreign-key-constraint": "unreleased; tables empty everywhere",
        "require-concurrent-index-creation": "unreleased; tables empty everywhere",
    },
    "example_contract_item_slug": {
        "ban-drop-constraint": "the helper CHECK; NOT NULL, set just before, holds it",
    },
}


def offline_sql(directory: Path) -> list[tuple[str, Path]]:
    """Write each migration's upgrade SQL to `directory`; return (revision, file) in order."""
    files: list[tuple[str, Path]] = []
    locations = os.pathsep.join(str(path) for path in VERSION_LOCATIONS)
    config = Config(ROOT / "alembic.ini")
    config.set_main_option("version_locations", locations)
    config.attributes["offline_url"] = "postgresql+asyncpg://lint@localhost/lint"  # no connection
    for script in reversed(list(ScriptDirectory.from_config(config).walk_revisions())):
        buffer = io.StringIO()
        config.output_buffer = buffer
        start = script.down_revision or "base"
        command.upgrade(config, f"{start}:{script.revision}", sql=True)
        path = directory / f"{len(files):03d}_{script.revision}.sql"
        path.write_text(buffer.getvalue())
        files.append((script.revision, path))
    return files


def squawk(path: Path, excluded: list[str]) -> int:
    """Run squawk on one file; its exit code."""
    binary = Path(sys.executable).with_name("squawk")
    command = [str(binary), f"--pg-version={PG_VERSION}", str(path)]
    if excluded:
        command.append("--exclude=" + ",".join(excluded))
    return subprocess.run(command, check=False).returncode  # noqa: S603 - fixed arguments


def main() -> int:
    """Lint every migration; non-zero if any has a hazard not accepted with a reason."""
    failed = []
    with tempfile.TemporaryDirectory() as directory:
        for revision, path in offline_sql(Path(directory)):
            excluded = sorted(EXCLUDED) + sorted(ACCEPTED.get(revision, {}))
            if squawk(path, excluded):
                failed.append(revision)
    if failed:
        print(f"Locking hazards in: {', '.join(failed)} (see docs/migrations.md)", file=sys.stderr)
        return 1
    print("Migrations: no locking hazards.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
