"""Languages: ``locale`` on subscriptions, outbox rows and digest schedules (``en`` or ``zh-CN``).

``/gesjobs subscribe prod-* lang zh-CN`` stores the language with the subscription; routing copies
the one it chose into the outbox row, so a replica renders a claimed row in the language it was
routed in; ``/gesjobs digest daily 09:00 lang zh-CN`` stores it with the schedule. Existing rows
keep their meaning: English (``server_default``).

Revision ID: 0008
Revises: 0006
Create Date: 2026-11-29

Migrations are frozen history: they spell their types out instead of importing ``store.tables``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("subscriptions", "outbox", "digest_schedules")


def upgrade() -> None:
    for table in _TABLES:
        op.add_column(table, sa.Column("locale", sa.String(16), nullable=False, server_default="en"))


def downgrade() -> None:
    for table in reversed(_TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("locale")
