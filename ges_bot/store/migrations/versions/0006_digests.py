"""Digests: each channel's schedule, and a digest outbox keyed by channel and period.

- ``digest_schedules``: one row per channel that asked for a digest (``/gesjobs digest daily 09:00``).
- ``digest_outbox``: one row per digest to send, unique by (channel, period), so that several
  replicas and a restarted bot send each digest once.

Downgrading drops both tables (schedules set from Slack are lost; config-file ones are not stored).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

Migrations are frozen history: they spell their types out instead of importing ``store.tables``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 64-bit ids on PostgreSQL; on SQLite an INTEGER PRIMARY KEY is the rowid.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time(name: str, *, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "digest_schedules",
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("team", sa.String(length=32), nullable=True),
        sa.Column("weekday", sa.Integer(), nullable=True),
        sa.Column("at_minute", sa.Integer(), nullable=False),
        sa.Column("tz", sa.Text(), nullable=False),
        sa.Column("always", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        _time("created_at", nullable=False),
        sa.PrimaryKeyConstraint("channel", name="pk_digest_schedules"),
    )
    op.create_table(
        "digest_outbox",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=64), nullable=False),
        _time("due_at", nullable=False),
        _time("since", nullable=False),
        sa.Column("schedule", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _time("created_at", nullable=False),
        _time("next_attempt_at", nullable=False),
        sa.Column("claimed_by", sa.Text(), nullable=True),
        _time("claimed_until"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("ts", sa.String(length=32), nullable=True),
        _time("sent_at"),
        sa.PrimaryKeyConstraint("id", name="pk_digest_outbox"),
        sa.UniqueConstraint("channel", "period", name="uq_digest_outbox_channel_period"),
    )
    op.create_index("ix_digest_outbox_state_next_attempt_at", "digest_outbox", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_digest_outbox_state_next_attempt_at", table_name="digest_outbox")
    op.drop_table("digest_outbox")
    op.drop_table("digest_schedules")
