"""EXAMPLE (expand): items get a nullable `slug`, filled from the title.

Not part of the project's chain (`migrations/versions`): docs/migrations.md walks through it,
and tests/db/test_expand_contract.py applies it on a branch of its own. Release N ships this
migration with code that writes `slug` and reads it when present; release N-1's code, which
knows nothing of the column, keeps working on this schema (the test runs it there).

Revision ID: example_expand_item_slug
Revises: 0005_security
Create Date: 2026-11-30 10:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "example_expand_item_slug"
down_revision: str | Sequence[str] | None = "0005_security"
branch_labels: str | Sequence[str] | None = ("expand_contract_example",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the column nullable (no table rewrite, no scan), then backfill the existing rows."""
    op.add_column("items", sa.Column("slug", sa.Text(), nullable=True))
    # One statement suits a small table. For a large one, backfill in batches, each in its
    # own transaction, so no lock is held long:
    #   with op.get_context().autocommit_block(): ... UPDATE ... WHERE id IN (SELECT id ...
    #   WHERE slug IS NULL LIMIT 1000) ... until no row changes.
    op.execute(
        "UPDATE items SET slug = lower(replace(title, ' ', '-')) || '-' || "
        "substr(CAST(id AS TEXT), 1, 8) WHERE slug IS NULL"
    )


def downgrade() -> None:
    """Drop the column (release N-1's code never read it)."""
    with op.batch_alter_table("items") as batch:
        batch.drop_column("slug")
