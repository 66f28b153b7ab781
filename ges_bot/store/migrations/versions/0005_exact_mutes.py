"""Mutes can match one graph exactly: ``mutes.exact``.

A mute button on an alert mutes the graph it names — and only that graph, even when the name
contains ``*``, ``?`` or ``[`` (a graph named ``g*`` must not mute every ``g…`` graph). Existing rows
keep their meaning (patterns: ``exact`` false).

Revision ID: 0005
Revises: 0003c
Create Date: 2026-11-29

Migrations are frozen history: they spell their types out instead of importing ``store.tables``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0003c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("mutes", sa.Column("exact", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("mutes") as batch:
        batch.drop_column("exact")
