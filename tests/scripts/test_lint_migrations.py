"""The migration linter sees every migration and fails on a locking hazard."""

from pathlib import Path

from scripts.lint_migrations import VERSION_LOCATIONS, offline_sql, squawk


def test_every_migration_and_example_is_rendered_with_lock_timeouts(tmp_path: Path) -> None:
    rendered = offline_sql(tmp_path)
    files = [path for location in VERSION_LOCATIONS for path in location.glob("*.py")]
    assert len(rendered) == len(files)
    for _, sql in rendered:
        text = sql.read_text()
        assert "SET LOCAL lock_timeout" in text
        assert "SET LOCAL statement_timeout" in text


def test_a_hazard_fails_and_its_safe_form_passes(tmp_path: Path) -> None:
    timeouts = "SET LOCAL lock_timeout = '5s';\nSET LOCAL statement_timeout = '15min';\n"
    hazard = tmp_path / "hazard.sql"
    # A NOT NULL column without a default, and an index built under a write lock.
    hazard.write_text(
        f"BEGIN;\n{timeouts}ALTER TABLE items ADD COLUMN sku TEXT NOT NULL;\n"
        "CREATE INDEX ix_items_sku ON items (sku);\nCOMMIT;\n"
    )
    assert squawk(hazard, []) != 0
    safe = tmp_path / "safe.sql"
    safe.write_text(f"BEGIN;\n{timeouts}ALTER TABLE items ADD COLUMN sku TEXT;\nCOMMIT;\n")
    assert squawk(safe, []) == 0
    missing_timeout = tmp_path / "no_timeout.sql"
    missing_timeout.write_text("BEGIN;\nALTER TABLE items ADD COLUMN sku TEXT;\nCOMMIT;\n")
    assert squawk(missing_timeout, []) != 0
