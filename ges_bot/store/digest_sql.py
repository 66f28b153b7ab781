"""The digest part of ``SqlStore``: schedules and the digest outbox, on SQLite and PostgreSQL.

Owns the queries behind the digest methods of :class:`~ges_bot.store.api.Store`. A mixin of
``SqlStore`` (which provides ``transaction`` and ``_insert``), kept apart so the alert outbox and
the digest outbox evolve independently. Once-only sending rests on the unique (channel, period)
key (``INSERT … ON CONFLICT DO NOTHING``) and on fenced claims: a row is claimed by an ``UPDATE``
whose ``WHERE`` re-checks that it is pending and unclaimed, so two replicas racing for one row
get it once (PostgreSQL re-evaluates the condition after the first writer commits).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import Row, Table, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ges_bot.schedule import DigestSchedule
from ges_bot.store.api import DigestItem, DigestState
from ges_bot.store.engine import AsyncConnection
from ges_bot.store.tables import digest_outbox, digest_schedules

__all__ = ["DigestQueries", "schedule_from_json", "schedule_to_json"]


def schedule_to_json(schedule: DigestSchedule) -> dict[str, Any]:
    return {
        "weekday": schedule.weekday,
        "at_minute": schedule.at.hour * 60 + schedule.at.minute,
        "tz": schedule.tz,
        "always": schedule.always,
        "source": schedule.source,
        "locale": schedule.locale,
    }


def schedule_from_json(channel: str, data: dict[str, Any]) -> DigestSchedule:
    minute = int(data.get("at_minute") or 0)
    weekday = data.get("weekday")
    return DigestSchedule(
        channel=channel,
        at=time(minute // 60, minute % 60),
        tz=str(data.get("tz") or "UTC"),
        weekday=int(weekday) if weekday is not None else None,
        always=bool(data.get("always")),
        source=str(data.get("source") or "db"),
        # Rows written before digests had a language are English.
        locale=str(data.get("locale") or "en"),
    )


def _schedule(row: Row[Any]) -> DigestSchedule:
    return DigestSchedule(
        channel=row.channel,
        at=time(row.at_minute // 60, row.at_minute % 60),
        tz=row.tz,
        weekday=row.weekday,
        always=bool(row.always),
        team=row.team,
        created_by=row.created_by,
        created_at=row.created_at,
        locale=row.locale,
    )


def _item(row: Row[Any]) -> DigestItem:
    return DigestItem(
        id=int(row.id),
        channel=row.channel,
        period=row.period,
        due_at=row.due_at,
        since=row.since,
        schedule=schedule_from_json(row.channel, dict(row.schedule or {})),
        state=row.state,
        attempts=int(row.attempts),
        created_at=row.created_at,
        ts=row.ts,
        sent_at=row.sent_at,
        last_error=row.last_error,
    )


class DigestQueries:
    """Digest methods of ``SqlStore`` (see the ``Store`` protocol for their contracts)."""

    # Provided by SqlStore.
    def transaction(self, *, write: bool = False) -> AbstractAsyncContextManager[AsyncConnection]:
        raise NotImplementedError

    def _insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        raise NotImplementedError

    async def digest_schedules(self, channel: str | None = None) -> list[DigestSchedule]:
        stmt = select(digest_schedules).order_by(digest_schedules.c.channel)
        if channel is not None:
            stmt = stmt.where(digest_schedules.c.channel == channel)
        async with self.transaction() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_schedule(row) for row in rows]

    async def set_digest_schedule(self, schedule: DigestSchedule) -> DigestSchedule:
        values = {
            "channel": schedule.channel,
            "team": schedule.team,
            "weekday": schedule.weekday,
            "at_minute": schedule.at.hour * 60 + schedule.at.minute,
            "tz": schedule.tz,
            "always": schedule.always,
            "created_by": schedule.created_by,
            "created_at": schedule.created_at,
            "locale": schedule.locale,
        }
        ins = self._insert(digest_schedules).values(**values)
        stmt = ins.on_conflict_do_update(
            index_elements=["channel"], set_={k: v for k, v in values.items() if k != "channel"}
        ).returning(*digest_schedules.c)
        async with self.transaction(write=True) as conn:
            row = (await conn.execute(stmt)).one()
        return _schedule(row)

    async def remove_digest_schedule(self, channel: str) -> int:
        async with self.transaction(write=True) as conn:
            result = await conn.execute(delete(digest_schedules).where(digest_schedules.c.channel == channel))
        return int(result.rowcount or 0)

    async def enqueue_digest(self, schedule: DigestSchedule, due_at: datetime, now: datetime) -> int | None:
        d = digest_outbox.c
        async with self.transaction(write=True) as conn:
            previous = (
                await conn.execute(
                    select(d.due_at)
                    .where(d.channel == schedule.channel, d.due_at < due_at)
                    .order_by(d.due_at.desc())
                    .limit(1)
                )
            ).scalar()
            since = previous if previous is not None else schedule.previous_due(due_at)
            stmt = (
                self._insert(digest_outbox)
                .values(
                    channel=schedule.channel,
                    period=schedule.period_key(due_at),
                    due_at=due_at,
                    since=since,
                    schedule=schedule_to_json(schedule),
                    state=DigestState.PENDING,
                    attempts=0,
                    created_at=now,
                    next_attempt_at=now,
                )
                .on_conflict_do_nothing(index_elements=["channel", "period"])
                .returning(d.id)
            )
            row = (await conn.execute(stmt)).first()
        return int(row[0]) if row is not None else None

    async def claim_digests(
        self, worker: str, now: datetime, lease_seconds: float, channel: str | None = None
    ) -> list[DigestItem]:
        d = digest_outbox.c
        due = select(d.id).where(d.state == DigestState.PENDING, d.next_attempt_at <= now).order_by(d.id)
        if channel is not None:
            due = due.where(d.channel == channel)
        claimed: list[DigestItem] = []
        async with self.transaction() as conn:
            ids = list((await conn.execute(due)).scalars().all())
        for digest_id in ids:
            stmt = (
                update(digest_outbox)
                .where(
                    d.id == digest_id,
                    d.state == DigestState.PENDING,
                    or_(d.claimed_until.is_(None), d.claimed_until < now),
                )
                .values(
                    claimed_by=worker, claimed_until=now + timedelta(seconds=lease_seconds), attempts=d.attempts + 1
                )
                .returning(*digest_outbox.c)
            )
            async with self.transaction(write=True) as conn:
                row = (await conn.execute(stmt)).first()
            if row is not None:
                claimed.append(_item(row))
        return claimed

    async def finish_digest(
        self, digest_id: int, worker: str, state: str, now: datetime, *, ts: str | None = None, error: str | None = None
    ) -> bool:
        d = digest_outbox.c
        stmt = (
            update(digest_outbox)
            .where(d.id == digest_id, d.state == DigestState.PENDING, d.claimed_by == worker)
            .values(state=state, ts=ts, sent_at=now, last_error=error, claimed_until=None)
        )
        async with self.transaction(write=True) as conn:
            result = await conn.execute(stmt)
        return bool(result.rowcount)

    async def retry_digest(self, digest_id: int, worker: str, error: str, next_attempt_at: datetime) -> bool:
        d = digest_outbox.c
        stmt = (
            update(digest_outbox)
            .where(d.id == digest_id, d.state == DigestState.PENDING, d.claimed_by == worker)
            .values(last_error=error, next_attempt_at=next_attempt_at, claimed_until=None, claimed_by=None)
        )
        async with self.transaction(write=True) as conn:
            result = await conn.execute(stmt)
        return bool(result.rowcount)

    async def digests(self, channel: str) -> list[DigestItem]:
        stmt = select(digest_outbox).where(digest_outbox.c.channel == channel).order_by(digest_outbox.c.due_at.desc())
        async with self.transaction() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_item(row) for row in rows]
