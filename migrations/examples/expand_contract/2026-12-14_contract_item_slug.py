"""EXAMPLE (contract): `slug` becomes NOT NULL, once no running code omits it.

Ships in release N+1, after every process of release N-1 is gone (release N writes `slug` on
every insert, so no NULL appears meanwhile). On PostgreSQL the NOT NULL is proven by a CHECK
constraint added NOT VALID (instant) and validated separately (a scan that blocks no writes);
SET NOT NULL then trusts the valid constraint instead of scanning under an exclusive lock.

Revision ID: example_contract_item_slug
Revises: example_expand_item_slug
Create Date: 2026-12-14 10:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "example_contract_item_slug"
down_revision: str | Sequence[str] | None = "example_expand_item_slug"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECK = "ck_items_slug_not_null"
LOCK_TIMEOUT = "5s"  # as migrations/env.py sets for each migration's transaction


def upgrade() -> None:
    """Fill any row a straggler wrote, then forbid NULL without a long exclusive lock."""
    op.execute(
        "UPDATE items SET slug = lower(replace(title, ' ', '-')) || '-' || "
        "substr(CAST(id AS TEXT), 1, 8) WHERE slug IS NULL"
    )
    if op.get_context().dialect.name != "postgresql":
        with op.batch_alter_table("items") as batch:  # SQLite rebuilds the table anyway
            batch.alter_column("slug", existing_type=sa.Text(), nullable=False)
        return
    # IF EXISTS: a rerun after a failure below (a lock timeout) finds the constraint committed.
    op.execute(f"ALTER TABLE items DROP CONSTRAINT IF EXISTS {CHECK}")
    op.execute(f"ALTER TABLE items ADD CONSTRAINT {CHECK} CHECK (slug IS NOT NULL) NOT VALID")
    # Validation in a transaction of its own: inside the one that added the constraint it
    # would hold that statement's exclusive lock for the whole scan.
    with op.get_context().autocommit_block():
        op.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
        op.execute(f"ALTER TABLE items VALIDATE CONSTRAINT {CHECK}")
    op.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    op.execute("ALTER TABLE items ALTER COLUMN slug SET NOT NULL")  # trusts the valid CHECK
    op.execute(f"ALTER TABLE items DROP CONSTRAINT {CHECK}")  # NOT NULL now says the same


def downgrade() -> None:
    """Allow NULL again."""
    with op.batch_alter_table("items") as batch:
        batch.alter_column("slug", existing_type=sa.Text(), nullable=True)
