"""The dead man's switch: ``ops_incidents`` and two poll-state columns.

- ``ops_incidents`` holds one row per (kind, subject) of the bot's own health problems posted to
  the ops channel (``GES_BOT_OPS_CHANNEL``): its state, since when, cause, fix and the Slack ``ts``
  of its message, so that it is posted once, updated and answered in its thread on recovery by
  whichever replica holds the ``ops`` lease, across restarts.
- ``poll_state`` gains ``last_error_kind`` (``auth``, ``server``, ``unreachable`` …) and
  ``failing_since`` (the first failure of the current run of failures), so that every replica can
  tell refused credentials and how long a project has been blind.

Revision ID: 0003c
Revises: 0007
Create Date: 2026-11-29

Migrations are frozen history: they spell their types out instead of importing ``store.tables``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003c"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("poll_state", sa.Column("last_error_kind", sa.String(length=32), nullable=True))
    op.add_column("poll_state", sa.Column("failing_since", _Time, nullable=True))
    op.create_table(
        "ops_incidents",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("since", _Time, nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("fix", sa.Text(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("channel", sa.String(length=80), nullable=True),
        sa.Column("ts", sa.String(length=32), nullable=True),
        sa.Column("posted_text", sa.Text(), nullable=True),
        sa.Column("posted_at", _Time, nullable=True),
        sa.Column("updated_at", _Time, nullable=True),
        sa.Column("resolved_at", _Time, nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("kind", "subject", name="pk_ops_incidents"),
    )


def downgrade() -> None:
    op.drop_table("ops_incidents")
    with op.batch_alter_table("poll_state") as batch:
        batch.drop_column("failing_since")
        batch.drop_column("last_error_kind")
