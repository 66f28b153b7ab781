"""Subscriptions that hear about failures also hear about unknown outcomes.

``unknown_outcome`` (a job that left running/pending for a status ges-bot does not know, which may
be a failure) is in the default set of a new subscription. A subscription stored before it existed
was made for failures and would never hear of one hidden behind a new GES status, so every stored
subscription whose kinds include ``failed`` gains it; anyone who does not want it subscribes again
with the words they want (``failed partial``). Config-file subscriptions are not stored: their
``statuses`` are read at each start.

Downgrading changes nothing: older versions ignore kinds they do not know.

Revision ID: 0003a
Revises: 0002
Create Date: 2026-11-29

Migrations are frozen history: they spell their types out instead of importing ``store.tables``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003a"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What this migration reads and writes, as it was at 0002 (never the live models).
_subscriptions = sa.table("subscriptions", sa.column("id", sa.Integer()), sa.column("kinds", sa.JSON()))


def upgrade() -> None:
    bind = op.get_bind()
    for sub_id, kinds in bind.execute(sa.select(_subscriptions.c.id, _subscriptions.c.kinds)).all():
        values = [str(k) for k in kinds or ()]
        if "failed" in values and "unknown_outcome" not in values:
            bind.execute(
                sa.update(_subscriptions)
                .where(_subscriptions.c.id == sub_id)
                .values(kinds=sorted({*values, "unknown_outcome"}))
            )


def downgrade() -> None:
    pass
