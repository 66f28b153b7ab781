"""Indexes that let /gesjobs read the snapshots it shows, by end time (begin time while running).

``JobQuery.placed_since/placed_until`` select snapshots by ``coalesce(end_time, begin_time)``,
written as two range conditions so each has an index: (project, status, end_time) for finished
jobs and (project, status, begin_time) for active ones. Before, an answer read every snapshot that
*began* in a window days wider than the question (~700 rows for "failed today" at 10k jobs a day).

Revision ID: 0007
Revises: 0003a
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0003a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_job_snapshots_project_status_end_time", "job_snapshots", ["project", "status", "end_time"])
    op.create_index("ix_job_snapshots_project_status_begin_time", "job_snapshots", ["project", "status", "begin_time"])


def downgrade() -> None:
    op.drop_index("ix_job_snapshots_project_status_begin_time", table_name="job_snapshots")
    op.drop_index("ix_job_snapshots_project_status_end_time", table_name="job_snapshots")
