"""``SqlStore``: the :class:`~ges_bot.store.api.Store` protocol on SQLAlchemy 2 async, for SQLite and PostgreSQL.

This module owns the queries: upserts, the one-transaction ``commit_tick``, outbox claiming, leases
and the read paths, each returning domain objects and ``store.api`` records. It decides nothing
about jobs, routing or delivery (those callers pass every ``now`` in) and never renders. Errors of
the database or its driver leave here as :class:`~ges_bot.errors.StoreError` with a sentence naming
the database (never its password) and what to check.

Both dialects run the same statements; where they differ it is only in the ``INSERT … ON CONFLICT``
constructor and in how the graph glob is matched (``LIKE`` on PostgreSQL, ``GLOB`` on SQLite, both
case-sensitive like :func:`ges_bot.domain.graph_matches`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Collection, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

from sqlalchemy import ColumnElement, Row, Select, Table, and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from ges_bot.domain import (
    ACTIVE_STATUSES,
    Delivery,
    EventKind,
    JobEvent,
    Mute,
    Subscription,
    graph_matches,
)
from ges_bot.domain import Job as DomainJob
from ges_bot.errors import StoreError
from ges_bot.sinks.targets import SINK_PREFIX
from ges_bot.store import codec
from ges_bot.store.api import (
    Health,
    JobQuery,
    MarkedSent,
    OpsNotice,
    OutboxItem,
    OutboxState,
    Outcome,
    PollState,
    PostedMessage,
    Snapshot,
    ThreadReply,
    TickCommit,
    TickResult,
)
from ges_bot.store.digest_sql import DigestQueries
from ges_bot.store.engine import (
    SQLITE_WRITE_OPTION,
    AsyncConnection,
    AsyncEngine,
    create_engine,
    describe,
    dialect_of,
    store_error,
)
from ges_bot.store.tables import (
    job_events,
    job_snapshots,
    leases,
    muted_deliveries,
    mutes,
    outbox,
    outcomes,
    poll_state,
    posted_message_jobs,
    posted_messages,
    subscriptions,
)

#: Most values bound in one ``IN (…)`` (SQLite allows 32766 parameters, PostgreSQL 32767).
_IN_CHUNK: Final = 500
#: Rows per INSERT of a large write (a 100k-job baseline), so its bound parameters stay small.
_WRITE_SLICE: Final = 1000

_T = TypeVar("_T")


def _chunks(items: Sequence[_T], size: int = _IN_CHUNK) -> Iterator[Sequence[_T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _like_pattern(glob: str) -> str:
    """A ``*``/``?`` glob as a LIKE pattern with ``\\`` as the escape character."""
    out = []
    for ch in glob:
        if ch in "\\%_":
            out.append("\\" + ch)
        elif ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)


def _placed_between(
    begin: ColumnElement[Any], end: ColumnElement[Any], since: datetime | None, until: datetime | None
) -> ColumnElement[bool]:
    """``coalesce(end, begin)`` in ``[since, until)``, written as two range conditions joined by OR
    so that each branch can use its own index (a function of the columns could use neither)."""

    def within(column: ColumnElement[Any]) -> list[ColumnElement[bool]]:
        bounds: list[ColumnElement[bool]] = []
        if since is not None:
            bounds.append(column >= since)
        if until is not None:
            bounds.append(column < until)
        return bounds

    return or_(and_(*within(end)), and_(end.is_(None), *within(begin)))


class SqlStore(DigestQueries):
    """The store on one database. Create it with :func:`open_store` (which migrates) or directly
    from a URL when the schema is known to be current."""

    def __init__(self, url: str, *, engine: AsyncEngine | None = None) -> None:
        self.dialect = dialect_of(url)
        #: The database in words, without its password (for logs and messages).
        self.description = describe(url)
        self._engine = engine or create_engine(url)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def close(self) -> None:
        await self._engine.dispose()

    # ------------------------------------------------------------------ plumbing

    def _insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    @asynccontextmanager
    async def transaction(self, *, write: bool = False) -> AsyncIterator[AsyncConnection]:
        """One transaction; ``write=True`` takes SQLite's write lock up front (``BEGIN IMMEDIATE``)
        so that concurrent writers queue on the busy timeout instead of failing mid-way."""
        try:
            async with self._engine.connect() as conn:
                if write and self.dialect == "sqlite":
                    await conn.execution_options(**{SQLITE_WRITE_OPTION: True})
                async with conn.begin():
                    yield conn
        except StoreError:
            raise
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise store_error(exc, self.description, self.dialect) from exc

    # ------------------------------------------------------------------ watcher

    async def poll_state(self, project: str) -> PollState | None:
        async with self.transaction() as conn:
            row = (await conn.execute(select(poll_state).where(poll_state.c.project == project))).first()
        return None if row is None else _poll_state(row)

    async def active_snapshots(self, project: str) -> dict[str, Snapshot]:
        stmt = select(job_snapshots).where(
            job_snapshots.c.project == project, job_snapshots.c.status.in_(sorted(ACTIVE_STATUSES))
        )
        async with self.transaction() as conn:
            rows = (await conn.execute(stmt)).all()
        return {row.job_id: _snapshot(row) for row in rows}

    async def snapshots(self, project: str, job_ids: Collection[str]) -> dict[str, Snapshot]:
        found: dict[str, Snapshot] = {}
        ids = sorted(set(job_ids))
        if not ids:
            return found
        async with self.transaction() as conn:
            for chunk in _chunks(ids):
                stmt = select(job_snapshots).where(
                    job_snapshots.c.project == project, job_snapshots.c.job_id.in_(chunk)
                )
                for row in await conn.execute(stmt):
                    found[row.job_id] = _snapshot(row)
        return found

    async def job_ids_with_status(self, project: str, status: str) -> set[str]:
        stmt = select(job_snapshots.c.job_id).where(
            job_snapshots.c.project == project, job_snapshots.c.status == status
        )
        async with self.transaction() as conn:
            return set((await conn.execute(stmt)).scalars().all())

    async def outcomes(self, project: str, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], Outcome]:
        wanted = set(keys)
        found: dict[tuple[str, str], Outcome] = {}
        graphs = sorted({graph for graph, _ in wanted})
        if not graphs:
            return found
        async with self.transaction() as conn:
            # Coarse by graph in SQL (portable), exact by (graph, job_name) here.
            for chunk in _chunks(graphs):
                stmt = select(outcomes).where(outcomes.c.project == project, outcomes.c.graph.in_(chunk))
                for row in await conn.execute(stmt):
                    if (row.graph, row.job_name) in wanted:
                        found[(row.graph, row.job_name)] = _outcome(row)
        return found

    async def commit_tick(self, tick: TickResult) -> TickCommit:
        # Encode before the transaction (a value that cannot be stored fails here, not halfway
        # through the writes), except snapshots: a baseline holds 100k of them, encoded a slice
        # at a time (a failure there rolls the whole tick back all the same).
        unique_events: dict[str, JobEvent] = {}
        for event in tick.events:
            unique_events.setdefault(event.dedup_key, event)
        event_rows = [_event_values(key, e) for key, e in unique_events.items()]
        outcome_rows = [dataclasses.asdict(o) for o in tick.outcomes]

        async with self.transaction(write=True) as conn:
            if tick.snapshots:
                ins = self._insert(job_snapshots)
                upsert = ins.on_conflict_do_update(
                    index_elements=["project", "job_id"],
                    set_={c.name: ins.excluded[c.name] for c in job_snapshots.c if not c.primary_key},
                )
                # In slices: one executemany of a 100k-job baseline would hold every row's bound
                # parameters at once (hundreds of MB); slices keep that to a slice's worth.
                for i in range(0, len(tick.snapshots), _WRITE_SLICE):
                    rows = [_snapshot_values(s) for s in tick.snapshots[i : i + _WRITE_SLICE]]
                    await conn.execute(upsert, rows)

            new_keys: set[str] = set()
            if event_rows:
                ins = self._insert(job_events)
                stmt = ins.on_conflict_do_nothing(index_elements=["dedup_key"]).returning(job_events.c.dedup_key)
                new_keys = set((await conn.execute(stmt, event_rows)).scalars().all())

            if outcome_rows:
                ins = self._insert(outcomes)
                await conn.execute(
                    ins.on_conflict_do_update(
                        index_elements=["project", "graph", "job_name"],
                        set_={c.name: ins.excluded[c.name] for c in outcomes.c if not c.primary_key},
                    ),
                    outcome_rows,
                )

            outbox_ids: list[int] = []
            for delivery in tick.deliveries:
                fresh = _only_new(delivery, new_keys)
                if fresh is not None:
                    outbox_ids.append(await self._insert_outbox(conn, fresh, tick.at))

            muted_rows = []
            for muted in tick.muted:
                fresh = _only_new(muted.delivery, new_keys)
                if fresh is not None:
                    muted_rows.append(
                        {
                            "mute_id": muted.mute_id,
                            "channel": fresh.channel,
                            "team": fresh.team,
                            "project": fresh.project,
                            "graph": fresh.graph,
                            "events": codec.events_to_json(fresh.events),
                            "muted_at": tick.at,
                        }
                    )
            if muted_rows:
                await conn.execute(muted_deliveries.insert(), muted_rows)

            degraded = _text(tick.degraded) if tick.degraded else None
            ins = self._insert(poll_state).values(
                project=tick.project,
                baselined_at=tick.at if tick.baseline else None,
                last_success_at=None if degraded else tick.at,
                last_attempt_at=tick.at,
                last_error=degraded,
                last_error_kind=tick.degraded_kind if degraded else None,
                failing_since=tick.at if degraded else None,
                consecutive_failures=1 if degraded else 0,
                cursor=dict(tick.cursor),
            )
            await conn.execute(
                ins.on_conflict_do_update(
                    index_elements=["project"],
                    set_={
                        # The first baseline is kept: it says since when the project has been watched.
                        "baselined_at": func.coalesce(poll_state.c.baselined_at, ins.excluded.baselined_at),
                        # A degraded tick is no success: the next one reaches back to the last, and
                        # the project is (in part) blind since its first failure.
                        "last_success_at": poll_state.c.last_success_at if degraded else ins.excluded.last_success_at,
                        "last_attempt_at": ins.excluded.last_attempt_at,
                        "last_error": ins.excluded.last_error,
                        "last_error_kind": ins.excluded.last_error_kind,
                        "failing_since": (
                            func.coalesce(poll_state.c.failing_since, ins.excluded.failing_since) if degraded else None
                        ),
                        "consecutive_failures": poll_state.c.consecutive_failures + 1 if degraded else 0,
                        "cursor": ins.excluded.cursor,
                    },
                )
            )

        new_events = tuple(e for key, e in unique_events.items() if key in new_keys)
        return TickCommit(new_events=new_events, outbox_ids=tuple(outbox_ids))

    async def record_poll_error(self, project: str, at: datetime, error: str, *, kind: str | None = None) -> None:
        ins = self._insert(poll_state).values(
            project=project,
            last_attempt_at=at,
            last_error=_text(error),
            last_error_kind=kind,
            failing_since=at,
            consecutive_failures=1,
            cursor={},
        )
        stmt = ins.on_conflict_do_update(
            index_elements=["project"],
            set_={
                "last_attempt_at": ins.excluded.last_attempt_at,
                "last_error": ins.excluded.last_error,
                "last_error_kind": ins.excluded.last_error_kind,
                # The first failure of a run is kept: it says since when the project is blind.
                "failing_since": func.coalesce(poll_state.c.failing_since, ins.excluded.failing_since),
                "consecutive_failures": poll_state.c.consecutive_failures + 1,
            },
        )
        async with self.transaction(write=True) as conn:
            await conn.execute(stmt)

    # ------------------------------------------------------------------ subscriptions and mutes

    async def subscriptions(self, channel: str | None = None) -> list[Subscription]:
        stmt = select(subscriptions).order_by(subscriptions.c.id)
        if channel is not None:
            stmt = stmt.where(subscriptions.c.channel == channel)
        async with self.transaction() as conn:
            return [_subscription(row) for row in await conn.execute(stmt)]

    async def add_subscription(self, sub: Subscription) -> Subscription:
        values = {
            "team": sub.team,
            "channel": sub.channel,
            "graph_pattern": sub.graph_pattern,
            "kinds": sorted(k.value for k in sub.kinds),
            "project": sub.project or "",
            "job_names": sorted(sub.job_names),
            "created_by": sub.created_by,
            "created_at": sub.created_at,
            "broken": sub.broken,
            "broken_at": sub.created_at if sub.broken else None,
            "locale": sub.locale,
        }
        ins = self._insert(subscriptions).values(**values)
        keys = ("channel", "graph_pattern", "project")
        stmt = ins.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: ins.excluded[name] for name in values if name not in keys},
        ).returning(*subscriptions.c)
        async with self.transaction(write=True) as conn:
            row = (await conn.execute(stmt)).one()
        return _subscription(row)

    async def remove_subscription(self, channel: str, graph_pattern: str, project: str | None = None) -> int:
        stmt = delete(subscriptions).where(
            subscriptions.c.channel == channel, subscriptions.c.graph_pattern == graph_pattern
        )
        if project is not None:
            stmt = stmt.where(subscriptions.c.project == project)
        async with self.transaction(write=True) as conn:
            return (await conn.execute(stmt)).rowcount

    async def mark_channel_broken(self, channel: str, error: str | None, now: datetime) -> list[Subscription]:
        stmt = (
            update(subscriptions)
            .where(subscriptions.c.channel == channel)
            .values(broken=_text(error), broken_at=now if error is not None else None)
            .returning(*subscriptions.c)
        )
        async with self.transaction(write=True) as conn:
            rows = (await conn.execute(stmt)).all()
        return sorted((_subscription(row) for row in rows), key=lambda s: s.id)

    async def mutes(self, now: datetime, channel: str | None = None) -> list[Mute]:
        stmt = select(mutes).where(mutes.c.until > now).order_by(mutes.c.id)
        if channel is not None:
            stmt = stmt.where(mutes.c.channel == channel)
        async with self.transaction() as conn:
            return [_mute(row) for row in await conn.execute(stmt)]

    async def add_mute(self, mute: Mute) -> Mute:
        """Mute, or extend the channel's mute of the same graph or pattern (one row, never one per
        press): it then lasts until the later of both ends, credited to the latest asker. Mutes
        that ended before ``mute.created_at`` are deleted on the way."""
        now = mute.created_at
        key = (
            mutes.c.channel == mute.channel,
            mutes.c.graph_pattern == mute.graph_pattern,
            mutes.c.exact == mute.exact,
        )
        async with self.transaction(write=True) as conn:
            if now is not None:
                await conn.execute(delete(mutes).where(mutes.c.until <= now))
            existing = (await conn.execute(select(mutes).where(*key).order_by(mutes.c.id).limit(1))).first()
            if existing is None:
                stmt: Any = mutes.insert().values(
                    channel=mute.channel,
                    graph_pattern=mute.graph_pattern,
                    until=mute.until,
                    created_by=mute.created_by,
                    created_at=mute.created_at,
                    exact=mute.exact,
                )
            else:
                stmt = (
                    mutes.update()
                    .where(mutes.c.id == existing.id)
                    .values(
                        until=max(existing.until, mute.until),
                        created_by=mute.created_by,
                        created_at=mute.created_at or existing.created_at,
                    )
                )
                # Rows from before the extension rule (several per key) fold into this one.
                await conn.execute(delete(mutes).where(*key, mutes.c.id != existing.id))
            row = (await conn.execute(stmt.returning(*mutes.c))).one()
        return _mute(row)

    async def purge_mutes(self, before: datetime) -> int:
        """Delete mutes that ended at or before ``before``; returns how many."""
        async with self.transaction(write=True) as conn:
            return (await conn.execute(delete(mutes).where(mutes.c.until <= before))).rowcount

    async def remove_mutes(self, channel: str, graph_pattern: str) -> int:
        stmt = delete(mutes).where(mutes.c.channel == channel, mutes.c.graph_pattern == graph_pattern)
        async with self.transaction(write=True) as conn:
            return (await conn.execute(stmt)).rowcount

    # ------------------------------------------------------------------ outbox

    async def _insert_outbox(self, conn: AsyncConnection, delivery: Delivery, now: datetime) -> int:
        stmt = (
            outbox.insert()
            .values(
                **_delivery_values(delivery),
                state=OutboxState.PENDING,
                attempts=0,
                created_at=now,
                next_attempt_at=now,
            )
            .returning(outbox.c.id)
        )
        return int((await conn.execute(stmt)).scalar_one())

    async def enqueue(self, deliveries: Sequence[Delivery], now: datetime) -> tuple[int, ...]:
        if not deliveries:
            return ()
        async with self.transaction(write=True) as conn:
            return tuple([await self._insert_outbox(conn, d, now) for d in deliveries])

    async def claim_outbox(
        self,
        worker: str,
        now: datetime,
        limit: int,
        lease_seconds: float,
        *,
        per_channel: int | None = None,
        busy: Collection[str] = (),
    ) -> list[OutboxItem]:
        if limit <= 0:
            return []
        o = outbox.c
        conditions: list[ColumnElement[bool]] = [
            o.state == OutboxState.PENDING,
            o.next_attempt_at <= now,
            or_(o.claimed_until.is_(None), o.claimed_until < now),
            # Rows for group-bot sinks ("sink:<name>") belong to the sink worker (claim_sink_outbox).
            ~o.channel.startswith(SINK_PREFIX),
        ]
        if busy:
            conditions.append(o.channel.not_in(sorted(set(busy))))
        candidates = None
        if per_channel is not None:
            # A channel another worker holds a live claim in is that worker's until it settles
            # (it paces the channel; two workers posting to one channel would double its rate).
            held = select(o.channel).where(
                o.state == OutboxState.PENDING, o.claimed_by != worker, o.claimed_until >= now
            )
            conditions.append(o.channel.not_in(held))
            # The oldest due rows of each channel only: the rest stays unclaimed in the outbox, free
            # for whoever has room when its turn comes (nothing is claimed a queue ahead of its post).
            ranked = (
                select(o.id, func.row_number().over(partition_by=o.channel, order_by=o.id).label("rank"))
                .where(*conditions)
                .subquery()
            )
            candidates = select(ranked.c.id).where(ranked.c.rank <= max(1, per_channel))
        query = select(o.id).where(*conditions)
        if candidates is not None:
            query = query.where(o.id.in_(candidates))
        return await self._claim(query, worker, now, limit, lease_seconds)

    async def claim_sink_outbox(self, worker: str, now: datetime, limit: int, lease_seconds: float) -> list[OutboxItem]:
        if limit <= 0:
            return []
        o = outbox.c
        due = select(o.id).where(
            o.state == OutboxState.PENDING,
            o.next_attempt_at <= now,
            or_(o.claimed_until.is_(None), o.claimed_until < now),
            o.channel.startswith(SINK_PREFIX),
        )
        return await self._claim(due, worker, now, limit, lease_seconds)

    async def _claim(
        self, query: Select[Any], worker: str, now: datetime, limit: int, lease_seconds: float
    ) -> list[OutboxItem]:
        """Lease the oldest ``limit`` rows ``query`` selects (ids) to ``worker``: the one claim of
        both the Slack worker and the sink worker."""
        due = (
            query.order_by(outbox.c.id)
            .limit(limit)
            # PostgreSQL: rows another worker is claiming right now are skipped, not waited for.
            # SQLite ignores this; its BEGIN IMMEDIATE makes the whole claim a single writer.
            .with_for_update(skip_locked=True)
        )
        async with self.transaction(write=True) as conn:
            ids = list((await conn.execute(due)).scalars().all())
            if not ids:
                return []
            stmt = (
                update(outbox)
                .where(outbox.c.id.in_(ids))
                .values(
                    claimed_by=worker,
                    claimed_until=now + timedelta(seconds=lease_seconds),
                    attempts=outbox.c.attempts + 1,
                )
                .returning(*outbox.c)
            )
            rows = (await conn.execute(stmt)).all()
        return sorted((_outbox_item(row) for row in rows), key=lambda item: item.id)

    async def sink_backlog(self) -> dict[str, tuple[int, str | None]]:
        pending = (outbox.c.state == OutboxState.PENDING, outbox.c.channel.startswith(SINK_PREFIX))
        async with self.transaction() as conn:
            counts = (
                await conn.execute(
                    select(outbox.c.channel, func.count(), func.max(outbox.c.id))
                    .where(*pending)
                    .group_by(outbox.c.channel)
                )
            ).all()
            newest = [int(row[2]) for row in counts]
            errors = (
                dict(
                    (await conn.execute(select(outbox.c.id, outbox.c.last_error).where(outbox.c.id.in_(newest)))).all()
                )
                if newest
                else {}
            )
        return {str(channel): (int(n), errors.get(last)) for channel, n, last in counts}

    def _fence(self, outbox_id: int, worker: str | None) -> list[ColumnElement[bool]]:
        """The row, if it is still pending (and, given ``worker``, still claimed by it): a worker
        whose claim ran out must not undo what the row's new holder did."""
        conditions = [outbox.c.id == outbox_id, outbox.c.state == OutboxState.PENDING]
        if worker is not None:
            conditions.append(outbox.c.claimed_by == worker)
        return conditions

    async def mark_sent(
        self,
        outbox_id: int,
        ts: str,
        now: datetime,
        posted: PostedMessage | None,
        *,
        worker: str | None = None,
        replies: Sequence[ThreadReply] = (),
        rest: Delivery | None = None,
        lease_seconds: float = 0.0,
    ) -> MarkedSent:
        async with self.transaction(write=True) as conn:
            row = (
                await conn.execute(
                    update(outbox)
                    .where(*self._fence(outbox_id, worker))
                    .values(state=OutboxState.SENT, ts=ts, sent_at=now, claimed_by=None, claimed_until=None)
                    .returning(*outbox.c)
                )
            ).first()
            if row is None:
                return MarkedSent(applied=False)
            if posted is not None:
                await self._record_posted(conn, posted)
            claimed = worker is not None and lease_seconds > 0
            claim = {
                "state": OutboxState.PENDING,
                # A row written claimed counts that claim, as ``claim_outbox`` would.
                "attempts": 1 if claimed else 0,
                "created_at": now,
                "next_attempt_at": now,
                "claimed_by": worker if claimed else None,
                "claimed_until": now + timedelta(seconds=lease_seconds) if claimed else None,
            }
            values: list[dict[str, Any]] = []
            if rest is not None:
                values.append(
                    {
                        **_delivery_values(rest),
                        **claim,
                        "parent_id": None,
                        "part": None,
                        "thread_ts": None,
                        "message": None,
                    }
                )
            for reply in sorted(replies, key=lambda r: r.part):
                values.append(
                    {
                        # The alert's own delivery, as stored: the reply is about the same events.
                        "channel": row.channel,
                        "team": row.team,
                        "project": row.project,
                        "graph": row.graph,
                        "events": row.events,
                        "subscription_ids": row.subscription_ids,
                        "locale": row.locale,
                        **claim,
                        "parent_id": outbox_id,
                        "part": reply.part,
                        "thread_ts": reply.thread_ts,
                        "message": {"text": reply.text, "blocks": list(reply.blocks)},
                    }
                )
            written: list[OutboxItem] = []
            if values:
                stmt = outbox.insert().returning(*outbox.c, sort_by_parameter_order=True)
                written = [_outbox_item(r) for r in await conn.execute(stmt, values)]
        return MarkedSent(applied=True, rows=tuple(written))

    async def _record_posted(self, conn: AsyncConnection, posted: PostedMessage) -> None:
        values = {
            "channel": posted.channel,
            "ts": posted.ts,
            "project": posted.project,
            "graph": posted.graph,
            "job_names": list(posted.job_names),
            "outbox_id": posted.outbox_id,
            "posted_at": posted.posted_at,
            "recovered": posted.recovered,
        }
        ins = self._insert(posted_messages).values(**values)
        await conn.execute(
            ins.on_conflict_do_update(
                index_elements=["channel", "ts"],
                set_={name: ins.excluded[name] for name in values if name not in ("channel", "ts")},
            )
        )
        await conn.execute(
            delete(posted_message_jobs).where(
                posted_message_jobs.c.channel == posted.channel, posted_message_jobs.c.ts == posted.ts
            )
        )
        job_ids = list(dict.fromkeys(posted.job_ids))
        if job_ids:
            await conn.execute(
                posted_message_jobs.insert(),
                [{"channel": posted.channel, "ts": posted.ts, "job_id": job_id} for job_id in job_ids],
            )

    async def renew_claims(
        self, worker: str, outbox_ids: Collection[int], now: datetime, lease_seconds: float
    ) -> set[int]:
        ids = sorted(set(outbox_ids))
        renewed: set[int] = set()
        if not ids:
            return renewed
        until = now + timedelta(seconds=lease_seconds)
        async with self.transaction(write=True) as conn:
            for chunk in _chunks(ids):
                stmt = (
                    update(outbox)
                    .where(
                        outbox.c.id.in_(chunk),
                        outbox.c.state == OutboxState.PENDING,
                        outbox.c.claimed_by == worker,
                    )
                    .values(claimed_until=until)
                    .returning(outbox.c.id)
                )
                renewed.update(int(i) for i in (await conn.execute(stmt)).scalars().all())
        return renewed

    async def mark_retry(
        self, outbox_id: int, error: str, next_attempt_at: datetime, *, worker: str | None = None
    ) -> bool:
        stmt = (
            update(outbox)
            .where(*self._fence(outbox_id, worker))
            .values(
                next_attempt_at=next_attempt_at,
                last_error=_text(error),
                claimed_by=None,
                claimed_until=None,
            )
            .returning(outbox.c.id)
        )
        async with self.transaction(write=True) as conn:
            return (await conn.execute(stmt)).first() is not None

    async def mark_dead(self, outbox_id: int, error: str, now: datetime, *, worker: str | None = None) -> bool:
        stmt = (
            update(outbox)
            .where(*self._fence(outbox_id, worker))
            .values(state=OutboxState.DEAD, last_error=_text(error), dead_at=now, claimed_by=None, claimed_until=None)
            .returning(outbox.c.id)
        )
        async with self.transaction(write=True) as conn:
            return (await conn.execute(stmt)).first() is not None

    async def message_for_failure(self, channel: str, project: str, job_id: str) -> PostedMessage | None:
        pm, pmj = posted_messages.c, posted_message_jobs.c
        stmt = (
            select(posted_messages)
            .join(posted_message_jobs, and_(pmj.channel == pm.channel, pmj.ts == pm.ts))
            .where(pm.channel == channel, pm.project == project, pmj.job_id == job_id)
            .order_by(pm.posted_at.desc(), pm.ts.desc())
            .limit(1)
        )
        async with self.transaction() as conn:
            row = (await conn.execute(stmt)).first()
            if row is None:
                return None
            ids = await conn.execute(
                select(pmj.job_id).where(pmj.channel == row.channel, pmj.ts == row.ts).order_by(pmj.job_id)
            )
            return dataclasses.replace(_posted(row), job_ids=tuple(ids.scalars().all()))

    async def mark_message_recovered(self, channel: str, ts: str) -> None:
        stmt = (
            update(posted_messages)
            .where(posted_messages.c.channel == channel, posted_messages.c.ts == ts)
            .values(recovered=True)
        )
        async with self.transaction(write=True) as conn:
            await conn.execute(stmt)

    async def outbox_item(self, outbox_id: int) -> OutboxItem | None:
        async with self.transaction() as conn:
            row = (await conn.execute(select(outbox).where(outbox.c.id == outbox_id))).first()
        return None if row is None else _outbox_item(row)

    # ------------------------------------------------------------------ queries

    async def query_jobs(self, query: JobQuery) -> list[Snapshot]:
        s = job_snapshots.c
        conditions: list[ColumnElement[bool]] = []
        if query.project is not None:
            conditions.append(s.project == query.project)
        if query.statuses:
            conditions.append(s.status.in_(sorted(query.statuses)))
        if query.job_name is not None:
            conditions.append(s.job_name == query.job_name)
        if query.job_id is not None:
            conditions.append(s.job_id == query.job_id)
        when = func.coalesce(s.begin_time, s.end_time)
        if query.since is not None:
            conditions.append(when >= query.since)
        if query.until is not None:
            conditions.append(when < query.until)
        if query.placed_since is not None or query.placed_until is not None:
            conditions.append(_placed_between(s.begin_time, s.end_time, query.placed_since, query.placed_until))
        pattern = query.graph_pattern
        exact_in_sql = True
        if pattern is not None and pattern != "*":
            if not any(ch in pattern for ch in "*?["):
                conditions.append(s.graph == pattern)
            elif "[" in pattern:
                # Character classes differ between GLOB, LIKE and fnmatch: match them here.
                exact_in_sql = False
            elif self.dialect == "sqlite":
                # SQLite's LIKE ignores ASCII case; GLOB is case-sensitive with the same * and ?.
                conditions.append(s.graph.op("GLOB", is_comparison=True)(pattern))
            else:
                conditions.append(s.graph.like(_like_pattern(pattern), escape="\\"))
        stmt = (
            select(job_snapshots)
            .where(*conditions)
            .order_by(func.coalesce(s.begin_time, s.end_time, s.first_seen).desc(), s.job_id.desc())
        )
        if query.limit <= 0:
            return []
        if exact_in_sql:
            stmt = stmt.limit(query.limit)
        found: list[Snapshot] = []
        async with self.transaction() as conn:
            result = await conn.stream(stmt)
            try:
                async for row in result:
                    if pattern is None or graph_matches(pattern, row.graph or ""):
                        found.append(_snapshot(row))
                        if len(found) >= query.limit:
                            break
            finally:
                await result.close()
        return found

    async def recent_events(self, since: datetime, kinds: Collection[EventKind], limit: int) -> list[JobEvent]:
        """Events observed at or after ``since``, newest first; empty ``kinds`` means every kind."""
        e = job_events.c
        stmt = select(job_events).where(e.at >= since).order_by(e.at.desc(), e.id.desc()).limit(max(limit, 0))
        if kinds:
            stmt = stmt.where(e.kind.in_(sorted(k.value for k in kinds)))
        async with self.transaction() as conn:
            return [_event(row) for row in await conn.execute(stmt)]

    async def health(self, now: datetime) -> Health:
        o = outbox.c
        async with self.transaction() as conn:
            polls = [_poll_state(row) for row in await conn.execute(select(poll_state).order_by(poll_state.c.project))]
            # Slack's backlog: rows for group-bot sinks are reported per sink (sink_backlog), so a
            # broken DingTalk robot never reads as "Slack keeps failing".
            pending = (
                await conn.execute(
                    select(func.count(), func.min(o.created_at)).where(
                        o.state == OutboxState.PENDING, ~o.channel.startswith(SINK_PREFIX)
                    )
                )
            ).one()
            dead = (await conn.execute(select(func.count()).where(o.state == OutboxState.DEAD))).scalar_one()
            broken = [
                _subscription(row)
                for row in await conn.execute(
                    select(subscriptions).where(subscriptions.c.broken.is_not(None)).order_by(subscriptions.c.id)
                )
            ]
        oldest = pending[1]
        return Health(
            polls=tuple(polls),
            outbox_pending=int(pending[0]),
            outbox_dead=int(dead),
            # min() over a SQLite text column comes back as text; parse it like the column would.
            oldest_pending_at=_as_utc(oldest),
            broken_subscriptions=tuple(broken),
        )

    # ------------------------------------------------------------------ leases

    async def try_lease(self, name: str, holder: str, now: datetime, ttl_seconds: float) -> bool:
        ins = self._insert(leases).values(name=name, holder=holder, expires_at=now + timedelta(seconds=ttl_seconds))
        stmt = ins.on_conflict_do_update(
            index_elements=["name"],
            set_={"holder": ins.excluded.holder, "expires_at": ins.excluded.expires_at},
            where=or_(leases.c.expires_at <= now, leases.c.holder == holder),
        ).returning(leases.c.holder)
        async with self.transaction(write=True) as conn:
            row = (await conn.execute(stmt)).first()
        return row is not None and row[0] == holder

    async def release_lease(self, name: str, holder: str) -> None:
        async with self.transaction(write=True) as conn:
            await conn.execute(delete(leases).where(leases.c.name == name, leases.c.holder == holder))

    async def lease_holder(self, name: str, now: datetime) -> tuple[str, datetime] | None:
        """Who holds the named lease at ``now`` and until when (``None`` if free or expired)."""
        async with self.transaction() as conn:
            row = (
                await conn.execute(select(leases.c.holder, leases.c.expires_at).where(leases.c.name == name))
            ).first()
        if row is None or row.expires_at <= now:
            return None
        return str(row.holder), row.expires_at


# ---------------------------------------------------------------------- rows ↔ records


def _as_utc(value: object) -> datetime | None:
    if value is None:
        return None
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _text(value: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL; one in a GES error text must not fail every tick forever.
    # (JSON columns keep it exactly, escaped.)
    return None if value is None else value.replace("\x00", "\ufffd")


def _only_new(delivery: Delivery, new_keys: set[str]) -> Delivery | None:
    events = tuple(e for e in delivery.events if e.dedup_key in new_keys)
    if not events:
        return None
    return dataclasses.replace(delivery, events=events)


def _snapshot_values(s: Snapshot) -> dict[str, Any]:
    job = s.job
    return {
        "project": s.project,
        "job_id": job.job_id,
        "status": job.status,
        "job_type": _text(job.job_type),
        "job_name": job.job_name,
        "graph": job.graph,
        "begin_time": job.begin_time,
        "end_time": job.end_time,
        "fail_reason": _text(job.fail_reason),
        "progress": codec.finite(job.progress),
        "files": codec.files_to_json(job.files),
        "first_seen": s.first_seen,
        "last_seen": s.last_seen,
        "last_change": s.last_change,
        "stuck_reported": s.stuck_reported,
    }


def _snapshot(row: Row[Any]) -> Snapshot:
    job = DomainJob(
        job_id=row.job_id,
        status=row.status,
        job_type=row.job_type,
        job_name=row.job_name,
        graph=row.graph,
        begin_time=row.begin_time,
        end_time=row.end_time,
        fail_reason=row.fail_reason,
        progress=row.progress,
        files=codec.files_from_json(row.files),
    )
    return Snapshot(
        project=row.project,
        job=job,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        last_change=row.last_change,
        stuck_reported=bool(row.stuck_reported),
    )


def _event_values(key: str, e: JobEvent) -> dict[str, Any]:
    return {
        "dedup_key": key,
        "project": e.project,
        "job_id": e.job.job_id,
        "kind": e.kind.value,
        "status": e.job.status,
        "previous_status": e.previous_status,
        "graph": e.graph,
        "job_name": e.job.job_name,
        "at": e.at,
        "job": codec.job_to_json(e.job),
        "recovers_job_id": e.recovers_job_id,
    }


def _event(row: Row[Any]) -> JobEvent:
    return JobEvent(
        project=row.project,
        kind=EventKind(row.kind),
        job=codec.job_from_json(row.job),
        at=row.at,
        previous_status=row.previous_status,
        recovers_job_id=row.recovers_job_id,
    )


def _outcome(row: Row[Any]) -> Outcome:
    return Outcome(
        project=row.project,
        graph=row.graph,
        job_name=row.job_name,
        job_id=row.job_id,
        status=row.status,
        at=row.at,
    )


def _poll_state(row: Row[Any]) -> PollState:
    return PollState(
        project=row.project,
        baselined_at=row.baselined_at,
        last_success_at=row.last_success_at,
        last_attempt_at=row.last_attempt_at,
        last_error=row.last_error,
        consecutive_failures=int(row.consecutive_failures),
        cursor={str(k): int(v) for k, v in (row.cursor or {}).items()},
        last_error_kind=row.last_error_kind,
        failing_since=row.failing_since,
    )


def _kinds(values: Iterable[str]) -> frozenset[EventKind]:
    # A kind this version does not know (written by a newer one) is ignored, not a crash.
    known = {k.value for k in EventKind}
    return frozenset(EventKind(v) for v in values if v in known)


def _subscription(row: Row[Any]) -> Subscription:
    return Subscription(
        id=int(row.id),
        channel=row.channel,
        graph_pattern=row.graph_pattern,
        kinds=_kinds(row.kinds or ()),
        team=row.team,
        project=row.project or None,
        job_names=frozenset(row.job_names or ()),
        created_by=row.created_by,
        created_at=row.created_at,
        source="db",
        broken=row.broken,
        locale=row.locale,
    )


def _mute(row: Row[Any]) -> Mute:
    return Mute(
        id=int(row.id),
        channel=row.channel,
        graph_pattern=row.graph_pattern,
        until=row.until,
        created_by=row.created_by,
        created_at=row.created_at,
        exact=bool(row.exact),
    )


def _delivery_values(delivery: Delivery) -> dict[str, Any]:
    """An outbox row's columns for ``delivery`` (without the delivery bookkeeping)."""
    return {
        "channel": delivery.channel,
        "team": delivery.team,
        "project": delivery.project,
        "graph": delivery.graph,
        "events": codec.events_to_json(delivery.events),
        "subscription_ids": list(delivery.subscription_ids),
        "locale": delivery.locale,
    }


def _outbox_item(row: Row[Any]) -> OutboxItem:
    delivery = Delivery(
        channel=row.channel,
        project=row.project,
        graph=row.graph,
        events=codec.events_from_json(row.events),
        team=row.team,
        subscription_ids=tuple(int(i) for i in row.subscription_ids or ()),
        locale=row.locale,
    )
    reply = None
    if row.parent_id is not None:
        message = row.message or {}
        reply = ThreadReply(
            parent_id=int(row.parent_id),
            part=int(row.part or 0),
            thread_ts=str(row.thread_ts or ""),
            text=str(message.get("text") or ""),
            blocks=tuple(message.get("blocks") or ()),
        )
    notice = OpsNotice.from_json(dict(row.message)) if row.parent_id is None and row.message else None
    return OutboxItem(
        id=int(row.id),
        delivery=delivery,
        state=row.state,
        attempts=int(row.attempts),
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        ts=row.ts,
        reply=reply,
        notice=notice,
    )


def _posted(row: Row[Any]) -> PostedMessage:
    return PostedMessage(
        channel=row.channel,
        ts=row.ts,
        project=row.project,
        graph=row.graph,
        job_names=tuple(row.job_names or ()),
        outbox_id=int(row.outbox_id),
        posted_at=row.posted_at,
        recovered=bool(row.recovered),
    )


async def open_store(url: str, *, migrate: bool = True) -> SqlStore:
    """A :class:`SqlStore` on ``url``, its schema migrated to this version's newest revision first
    (``migrate=False``: checked instead, with a :class:`StoreError` saying to run ``ges-bot db upgrade``)."""
    from ges_bot.store import migrate as migrations

    if migrate:
        await migrations.upgrade(url)
    else:
        await migrations.require_current(url)
    return SqlStore(url)
