"""Posted messages remember their failed job ids; thread replies become outbox rows.

- ``posted_message_jobs`` holds one row per *failed job id* of a posted message (it held job
  names), so that a recovery threads under the message that reported the very job it recovers.
  Existing rows are rebuilt from the events of each message's outbox row.
- ``outbox`` gains ``parent_id``, ``part``, ``thread_ts`` and ``message``: an alert's overflow
  replies are written as rows of their own when the alert is marked sent, so a crash no longer
  loses them.

Downgrading rebuilds the job-name rows from ``posted_messages.job_names`` and deletes the reply
rows (the older version keeps replies in memory only and would post a reply row as a whole alert).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05

Migrations are frozen history: they spell their types out instead of importing ``store.tables``.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 64-bit ids on PostgreSQL; on SQLite an INTEGER PRIMARY KEY is the rowid.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# What this migration reads, as it was at 0001/0002 (never the live models).
_outbox = sa.table("outbox", sa.column("id", BigId), sa.column("events", sa.JSON()), sa.column("parent_id", BigId))
_posted = sa.table(
    "posted_messages",
    sa.column("channel", sa.String(64)),
    sa.column("ts", sa.String(32)),
    sa.column("job_names", sa.JSON()),
    sa.column("outbox_id", BigId),
)
_FAILURE_KINDS = ("failed", "partially_failed")


def _failed_job_ids(events: Any) -> list[str]:
    ids: dict[str, None] = {}
    for event in events or ():
        job = event.get("job") or {}
        if event.get("kind") in _FAILURE_KINDS and job.get("job_id") is not None:
            ids[str(job["job_id"])] = None
    return list(ids)


def _jobs_table(key: str) -> None:
    op.create_table(
        "posted_message_jobs",
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("ts", sa.String(length=32), nullable=False),
        sa.Column(key, sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("channel", "ts", key, name="pk_posted_message_jobs"),
        sa.ForeignKeyConstraint(
            ["channel", "ts"],
            ["posted_messages.channel", "posted_messages.ts"],
            name="fk_posted_message_jobs_channel_posted_messages",
            ondelete="CASCADE",
        ),
    )


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(_posted.c.channel, _posted.c.ts, _outbox.c.events).join(_outbox, _outbox.c.id == _posted.c.outbox_id)
    ).all()
    failed = [
        {"channel": channel, "ts": ts, "job_id": job_id}
        for channel, ts, events in rows
        for job_id in _failed_job_ids(events)
    ]

    op.drop_table("posted_message_jobs")
    _jobs_table("job_id")
    op.create_index("ix_posted_message_jobs_channel_job_id", "posted_message_jobs", ["channel", "job_id"])
    if failed:
        op.bulk_insert(
            sa.table(
                "posted_message_jobs",
                sa.column("channel", sa.String(64)),
                sa.column("ts", sa.String(32)),
                sa.column("job_id", sa.Text()),
            ),
            failed,
        )

    op.add_column("outbox", sa.Column("parent_id", BigId, nullable=True))
    op.add_column("outbox", sa.Column("part", sa.Integer(), nullable=True))
    op.add_column("outbox", sa.Column("thread_ts", sa.String(length=32), nullable=True))
    op.add_column("outbox", sa.Column("message", sa.JSON(), nullable=True))


def downgrade() -> None:
    bind = op.get_bind()
    bind.execute(sa.delete(_outbox).where(_outbox.c.parent_id.is_not(None)))
    with op.batch_alter_table("outbox") as batch:
        for column in ("message", "thread_ts", "part", "parent_id"):
            batch.drop_column(column)

    names = [
        {"channel": channel, "ts": ts, "job_name": name}
        for channel, ts, job_names in bind.execute(sa.select(_posted.c.channel, _posted.c.ts, _posted.c.job_names))
        for name in dict.fromkeys(str(n) for n in job_names or ())
    ]
    op.drop_index("ix_posted_message_jobs_channel_job_id", table_name="posted_message_jobs")
    op.drop_table("posted_message_jobs")
    _jobs_table("job_name")
    if names:
        op.bulk_insert(
            sa.table(
                "posted_message_jobs",
                sa.column("channel", sa.String(64)),
                sa.column("ts", sa.String(32)),
                sa.column("job_name", sa.Text()),
            ),
            names,
        )
