"""Persistence of the ops channel's incidents (table ``ops_incidents``) on a :class:`SqlStore`.

This module owns the queries of one table: read every incident, write one. It decides nothing
(``notify.ops`` does) and holds no Slack logic. It lives beside ``store.sql`` rather than in the
``Store`` protocol because only the ops notifier uses it; it runs in the store's transactions and
raises :class:`~ges_bot.errors.StoreError` like the rest of the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from ges_bot.sinks.targets import sink_target
from ges_bot.store.api import OpsNotice, OutboxState
from ges_bot.store.sql import SqlStore
from ges_bot.store.tables import ops_incidents, outbox

__all__ = ["IncidentRecord", "IncidentState", "IncidentStore"]


class IncidentState:
    OPEN = "open"
    #: Recovered; the reply in its thread is still to be posted.
    RESOLVED = "resolved"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """One row of ``ops_incidents``."""

    kind: str
    subject: str
    state: str
    since: datetime
    cause: str
    fix: str
    detail: dict[str, Any] = field(default_factory=dict)
    channel: str | None = None
    ts: str | None = None
    posted_text: str | None = None
    posted_at: datetime | None = None
    updated_at: datetime | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.subject)


_COLUMNS = (
    "state",
    "since",
    "cause",
    "fix",
    "detail",
    "channel",
    "ts",
    "posted_text",
    "posted_at",
    "updated_at",
    "resolved_at",
    "resolution",
)


class IncidentStore:
    """Read and write ``ops_incidents`` through a :class:`SqlStore`'s engine."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    async def all(self) -> dict[tuple[str, str], IncidentRecord]:
        async with self._store.transaction() as conn:
            rows = (await conn.execute(select(ops_incidents))).all()
        return {
            (row.kind, row.subject): IncidentRecord(
                kind=row.kind,
                subject=row.subject,
                **{name: getattr(row, name) for name in _COLUMNS if name != "detail"},
                detail=dict(row.detail or {}),
            )
            for row in rows
        }

    async def save(
        self,
        record: IncidentRecord,
        *,
        notice: OpsNotice | None = None,
        sinks: Sequence[str] = (),
        now: datetime | None = None,
    ) -> None:
        """Insert or replace the row of ``record.key``; with ``notice``, also one sink outbox row
        per name in ``sinks`` telling it — in the same transaction, so a change of an incident's
        state is told to the sinks exactly once however the process ends."""
        values = {name: getattr(record, name) for name in _COLUMNS}
        ins = self._store._insert(ops_incidents).values(kind=record.kind, subject=record.subject, **values)
        stmt = ins.on_conflict_do_update(index_elements=["kind", "subject"], set_=values)
        at = now or record.updated_at or record.since
        async with self._store.transaction(write=True) as conn:
            await conn.execute(stmt)
            if notice is not None and sinks:
                await conn.execute(
                    outbox.insert(),
                    [
                        {
                            "channel": sink_target(name),
                            "team": None,
                            "project": record.subject if record.kind == "blind" else "",
                            "graph": "",
                            "events": [],
                            "subscription_ids": [],
                            "state": OutboxState.PENDING,
                            "attempts": 0,
                            "created_at": at,
                            "next_attempt_at": at,
                            "message": notice.to_json(),
                        }
                        for name in sinks
                    ],
                )
