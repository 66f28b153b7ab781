"""Initial schema.

Tables: job snapshots, job events, outcomes, poll state, subscriptions, mutes, outbox, posted
messages (and their job names), muted deliveries, leases.

Revision ID: 0001
Revises:
Create Date: 2026-11-28

Migrations are frozen history: they spell their types out instead of importing ``store.tables``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 64-bit ids on PostgreSQL; on SQLite an INTEGER PRIMARY KEY is the rowid.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Every time is an aware UTC timestamp (timestamptz on PostgreSQL).
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "job_snapshots",
        sa.Column("project", sa.Text(), nullable=False),
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("job_type", sa.Text(), nullable=True),
        sa.Column("job_name", sa.Text(), nullable=True),
        sa.Column("graph", sa.Text(), nullable=True),
        sa.Column("begin_time", Time, nullable=True),
        sa.Column("end_time", Time, nullable=True),
        sa.Column("fail_reason", sa.Text(), nullable=True),
        sa.Column("progress", sa.Float(), nullable=True),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("first_seen", Time, nullable=False),
        sa.Column("last_seen", Time, nullable=False),
        sa.Column("last_change", Time, nullable=False),
        sa.Column("stuck_reported", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("project", "job_id", name="pk_job_snapshots"),
    )
    op.create_index("ix_job_snapshots_project_status", "job_snapshots", ["project", "status"])
    op.create_index("ix_job_snapshots_begin_time", "job_snapshots", ["begin_time"])

    op.create_table(
        "job_events",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("dedup_key", sa.Text(), nullable=False),
        sa.Column("project", sa.Text(), nullable=False),
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("previous_status", sa.Text(), nullable=True),
        sa.Column("graph", sa.Text(), nullable=False),
        sa.Column("job_name", sa.Text(), nullable=True),
        sa.Column("at", Time, nullable=False),
        sa.Column("job", sa.JSON(), nullable=False),
        sa.Column("recovers_job_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_job_events"),
        sa.UniqueConstraint("dedup_key", name="uq_job_events_dedup_key"),
    )
    op.create_index("ix_job_events_at", "job_events", ["at"])
    op.create_index("ix_job_events_project_job_id", "job_events", ["project", "job_id"])

    op.create_table(
        "outcomes",
        sa.Column("project", sa.Text(), nullable=False),
        sa.Column("graph", sa.Text(), nullable=False),
        sa.Column("job_name", sa.Text(), nullable=False),
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("at", Time, nullable=False),
        sa.PrimaryKeyConstraint("project", "graph", "job_name", name="pk_outcomes"),
    )

    op.create_table(
        "poll_state",
        sa.Column("project", sa.Text(), nullable=False),
        sa.Column("baselined_at", Time, nullable=True),
        sa.Column("last_success_at", Time, nullable=True),
        sa.Column("last_attempt_at", Time, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("cursor", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("project", name="pk_poll_state"),
    )

    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("team", sa.String(length=32), nullable=True),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("graph_pattern", sa.Text(), nullable=False),
        sa.Column("kinds", sa.JSON(), nullable=False),
        sa.Column("project", sa.Text(), nullable=False),
        sa.Column("job_names", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", Time, nullable=True),
        sa.Column("broken", sa.Text(), nullable=True),
        sa.Column("broken_at", Time, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_subscriptions"),
        sa.UniqueConstraint(
            "channel", "graph_pattern", "project", name="uq_subscriptions_channel_graph_pattern_project"
        ),
    )

    op.create_table(
        "mutes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("graph_pattern", sa.Text(), nullable=False),
        sa.Column("until", Time, nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", Time, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_mutes"),
    )
    op.create_index("ix_mutes_channel_until", "mutes", ["channel", "until"])

    op.create_table(
        "outbox",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("team", sa.String(length=32), nullable=True),
        sa.Column("project", sa.Text(), nullable=False),
        sa.Column("graph", sa.Text(), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("subscription_ids", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("next_attempt_at", Time, nullable=False),
        sa.Column("claimed_by", sa.Text(), nullable=True),
        sa.Column("claimed_until", Time, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("ts", sa.String(length=32), nullable=True),
        sa.Column("sent_at", Time, nullable=True),
        sa.Column("dead_at", Time, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
    )
    op.create_index("ix_outbox_state_next_attempt_at", "outbox", ["state", "next_attempt_at"])

    op.create_table(
        "posted_messages",
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("ts", sa.String(length=32), nullable=False),
        sa.Column("project", sa.Text(), nullable=False),
        sa.Column("graph", sa.Text(), nullable=False),
        sa.Column("job_names", sa.JSON(), nullable=False),
        sa.Column("outbox_id", BigId, nullable=False),
        sa.Column("posted_at", Time, nullable=False),
        sa.Column("recovered", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("channel", "ts", name="pk_posted_messages"),
    )
    op.create_index(
        "ix_posted_messages_channel_project_graph_posted_at",
        "posted_messages",
        ["channel", "project", "graph", "posted_at"],
    )

    op.create_table(
        "posted_message_jobs",
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("ts", sa.String(length=32), nullable=False),
        sa.Column("job_name", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("channel", "ts", "job_name", name="pk_posted_message_jobs"),
        sa.ForeignKeyConstraint(
            ["channel", "ts"],
            ["posted_messages.channel", "posted_messages.ts"],
            name="fk_posted_message_jobs_channel_posted_messages",
            ondelete="CASCADE",
        ),
    )

    op.create_table(
        "muted_deliveries",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("mute_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("team", sa.String(length=32), nullable=True),
        sa.Column("project", sa.Text(), nullable=False),
        sa.Column("graph", sa.Text(), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("muted_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_muted_deliveries"),
    )
    op.create_index("ix_muted_deliveries_channel_muted_at", "muted_deliveries", ["channel", "muted_at"])

    op.create_table(
        "leases",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("expires_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )


def downgrade() -> None:
    for table in (
        "leases",
        "muted_deliveries",
        "posted_message_jobs",
        "posted_messages",
        "outbox",
        "mutes",
        "subscriptions",
        "poll_state",
        "outcomes",
        "job_events",
        "job_snapshots",
    ):
        op.drop_table(table)
