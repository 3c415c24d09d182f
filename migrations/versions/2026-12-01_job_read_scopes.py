"""Jobs: the scopes that reading a job's result takes.

Revision ID: 0008_job_read_scopes
Revises: 0007_login_known_clients
Create Date: 2026-12-01 12:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_job_read_scopes"
down_revision: str | Sequence[str] | None = "0007_login_known_clients"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add jobs.read_scopes; exports made before it need the scopes an export takes.

    NULL (a job the previous release makes during a rolling deploy) needs every scope.
    """
    op.add_column("jobs", sa.Column("read_scopes", sa.JSON(), nullable=True))
    # The export's scopes as `users.deps.EXPORT_SCOPES` names them; written out, since a
    # migration must not change with the code. Every other job's result needs none.
    # JSON written as literal text, which both databases read into the column: `app migrate
    # --sql` renders the statements without a connection, and has no literal form for a JSON
    # parameter.
    op.execute(
        'UPDATE jobs SET read_scopes = \'["items:read", "users:read"]\' '
        "WHERE task = 'export_user_data'"
    )
    op.execute("UPDATE jobs SET read_scopes = '[]' WHERE read_scopes IS NULL")
    # Left nullable (expand, docs/migrations.md): the release before this one, still running
    # during a rolling deploy, inserts jobs without the column. Its jobs need every scope.


def downgrade() -> None:
    """Drop jobs.read_scopes."""
    op.drop_column("jobs", "read_scopes")
