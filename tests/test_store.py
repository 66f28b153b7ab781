"""SqlStore on SQLite and PostgreSQL: what the poller, delivery worker and Slack app get back.

Every test that takes ``store`` runs twice (``db_url`` is parametrized), on a fresh database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import event as sa_event
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection

from ges_bot.domain import (
    Delivery,
    EventKind,
    FileImport,
    FileKind,
    Job,
    JobEvent,
    Mute,
    MutedDelivery,
    Subscription,
)
from ges_bot.errors import ConfigError, StoreError
from ges_bot.store import SqlStore, codec, database_url, migrate, open_store
from ges_bot.store.api import (
    JobQuery,
    MarkedSent,
    OutboxState,
    Outcome,
    PostedMessage,
    Snapshot,
    ThreadReply,
    TickResult,
)
from ges_bot.store.engine import create_engine
from ges_bot.store.tables import muted_deliveries, outbox
from tests.support.asgi import free_port

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def job(
    job_id: str,
    status: str = "failed",
    *,
    graph: str | None = "movies",
    job_name: str | None = "ImportGraph",
    begin: datetime | None = None,
    end: datetime | None = None,
    files: tuple[FileImport, ...] = (),
    fail_reason: str | None = None,
) -> Job:
    return Job(
        job_id=job_id,
        status=status,
        job_type="1",
        job_name=job_name,
        graph=graph,
        begin_time=begin,
        end_time=end,
        fail_reason=fail_reason,
        progress=0.0,
        files=files,
    )


def event(j: Job, kind: EventKind = EventKind.FAILED, when: datetime = T0, project: str = "prod") -> JobEvent:
    return JobEvent(project=project, kind=kind, job=j, at=when, previous_status="running")


def snap(j: Job, when: datetime = T0, project: str = "prod", stuck: bool = False) -> Snapshot:
    return Snapshot(project=project, job=j, first_seen=when, last_seen=when, last_change=when, stuck_reported=stuck)


def tick(
    *,
    when: datetime = T0,
    snapshots: list[Snapshot] | None = None,
    events: list[JobEvent] | None = None,
    outcomes: list[Outcome] | None = None,
    deliveries: list[Delivery] | None = None,
    muted: list[MutedDelivery] | None = None,
    cursor: dict[str, int] | None = None,
    baseline: bool = False,
    project: str = "prod",
) -> TickResult:
    return TickResult(
        project=project,
        at=when,
        snapshots=snapshots or [],
        events=events or [],
        outcomes=outcomes or [],
        deliveries=deliveries or [],
        muted=muted or [],
        cursor=cursor or {},
        baseline=baseline,
    )


def delivery(*events: JobEvent, channel: str = "C1", graph: str = "movies") -> Delivery:
    return Delivery(channel=channel, project="prod", graph=graph, events=events, team="T1", subscription_ids=(3, 7))


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlStore]:
    s = await open_store(db_url)
    try:
        yield s
    finally:
        await s.close()


# ---------------------------------------------------------------------- database_url


@pytest.mark.parametrize(
    ("given_url", "expected"),
    [
        ("sqlite:///ges-bot.db", "sqlite+aiosqlite:///ges-bot.db"),
        ("sqlite:////var/lib/ges/bot.db", "sqlite+aiosqlite:////var/lib/ges/bot.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql://u:p@db:5432/ges", "postgresql+asyncpg://u:p@db:5432/ges"),
        ("postgres://u:p@db/ges", "postgresql+asyncpg://u:p@db/ges"),
        ("postgresql+asyncpg://u@db/ges", "postgresql+asyncpg://u@db/ges"),
        ("postgresql://u@db/ges?sslmode=require", "postgresql+asyncpg://u@db/ges?ssl=require"),
    ],
)
def test_database_url_picks_the_async_driver(given_url: str, expected: str) -> None:
    assert database_url(given_url) == expected


@pytest.mark.parametrize(
    ("given_url", "says"),
    [
        ("mysql://u@h/db", "supports SQLite and PostgreSQL"),
        ("postgresql+psycopg2://u@h/db", "asyncpg"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("not a url", "not a database URL"),
        ("", "empty"),
    ],
)
def test_database_url_rejects_what_it_cannot_run_with_a_fix(given_url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as err:
        database_url(given_url)
    assert "postgresql://" in str(err.value) or "sqlite" in str(err.value)


# ---------------------------------------------------------------------- codec


_tz = st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30))])
_times = st.datetimes(timezones=_tz)
_opt_text = st.none() | st.text()
_files = st.builds(
    FileImport,
    kind=st.sampled_from(list(FileKind)),
    path=_opt_text,
    status=_opt_text,
    cause=_opt_text,
    log=_opt_text,
    total_lines=st.none() | st.integers(),
    failed_lines=st.none() | st.integers(),
    successful_lines=st.none() | st.integers(),
)
_jobs = st.builds(
    Job,
    job_id=st.text(min_size=1),
    status=st.text(),
    job_type=_opt_text,
    job_name=_opt_text,
    graph=_opt_text,
    begin_time=st.none() | _times,
    end_time=st.none() | _times,
    fail_reason=_opt_text,
    progress=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    files=st.lists(_files, max_size=3).map(tuple),
)
_events = st.builds(
    JobEvent,
    project=st.text(),
    kind=st.sampled_from(list(EventKind)),
    job=_jobs,
    at=_times,
    previous_status=_opt_text,
    recovers_job_id=_opt_text,
)


@given(
    st.builds(
        Delivery,
        channel=st.text(),
        project=st.text(),
        graph=st.text(),
        events=st.lists(_events, max_size=3).map(tuple),
        team=_opt_text,
        subscription_ids=st.lists(st.integers(), max_size=3).map(tuple),
    )
)
def test_codec_round_trips_deliveries_exactly(d: Delivery) -> None:
    import json

    # Through real JSON text, as the database stores it.
    assert codec.delivery_from_json(json.loads(json.dumps(codec.delivery_to_json(d)))) == d


def test_codec_stores_non_finite_progress_as_unknown() -> None:
    j = job("1")
    for value in (math.nan, math.inf):
        bad = Job(job_id="1", status="failed", progress=value)
        assert codec.job_from_json(codec.job_to_json(bad)).progress is None
    assert codec.job_from_json(codec.job_to_json(j)) == j


# ---------------------------------------------------------------------- snapshots and ticks


async def test_snapshots_round_trip_with_awkward_values(store: SqlStore) -> None:
    files = (
        FileImport(FileKind.SCHEMA, "obs://b/schema.xml", "success", None, None, None, None, None),
        FileImport(FileKind.VERTEX, "obs://b/v.csv", "partFailed", "bad row «3»", "obs://b/log", 10, 2, 8),
    )
    plus8 = timezone(timedelta(hours=8))
    running = job("j1", "running", begin=datetime(2024, 5, 1, 20, 0, 0, 1, tzinfo=plus8), files=files)
    failed = job("j2", "failed", graph="電影", job_name=None, fail_reason="OOM\x00 at line 3", end=at(5))
    pending = job("j3", "pending", graph=None)
    await store.commit_tick(tick(snapshots=[snap(running), snap(failed, stuck=True), snap(pending)]))

    active = await store.active_snapshots("prod")
    assert set(active) == {"j1", "j3"}
    assert active["j1"] == snap(running)
    assert active["j1"].job.begin_time == datetime(2024, 5, 1, 12, 0, 0, 1, tzinfo=UTC)
    assert active["j1"].job.begin_time.tzinfo is UTC
    got = await store.snapshots("prod", ["j2", "missing"])
    assert set(got) == {"j2"}
    # NUL cannot live in PostgreSQL text; it is replaced rather than failing the tick.
    assert got["j2"].job.fail_reason == "OOM\ufffd at line 3"
    assert got["j2"].stuck_reported is True
    assert await store.job_ids_with_status("prod", "failed") == {"j2"}
    assert await store.active_snapshots("other") == {}

    # A later tick updates the row in place.
    done = job("j1", "success", begin=running.begin_time, end=at(60), files=files)
    await store.commit_tick(tick(when=at(60), snapshots=[Snapshot("prod", done, T0, at(60), at(60))]))
    assert set(await store.active_snapshots("prod")) == {"j3"}
    assert (await store.snapshots("prod", ["j1"]))["j1"].job == done


async def test_commit_tick_records_events_outcomes_outbox_and_poll_state(store: SqlStore) -> None:
    j1, j2 = job("j1", "failed", fail_reason="boom"), job("j2", "partiallyFailed")
    e1, e2 = event(j1), event(j2, EventKind.PARTIALLY_FAILED)
    result = await store.commit_tick(
        tick(
            snapshots=[snap(j1), snap(j2)],
            events=[e1, e2],
            outcomes=[Outcome("prod", "movies", "ImportGraph", "j2", "partiallyFailed", T0)],
            deliveries=[delivery(e1, e2), delivery(e2, channel="C2")],
            cursor={"running": 3},
        )
    )
    assert result.new_events == (e1, e2)
    assert len(result.outbox_ids) == 2
    item = await store.outbox_item(result.outbox_ids[0])
    assert item is not None
    assert item.delivery == delivery(e1, e2)
    assert (item.state, item.attempts, item.created_at, item.next_attempt_at) == (OutboxState.PENDING, 0, T0, T0)

    assert await store.outcomes("prod", [("movies", "ImportGraph"), ("movies", "Other")]) == {
        ("movies", "ImportGraph"): Outcome("prod", "movies", "ImportGraph", "j2", "partiallyFailed", T0)
    }
    state = await store.poll_state("prod")
    assert state is not None
    assert (state.last_success_at, state.last_attempt_at, state.consecutive_failures) == (T0, T0, 0)
    assert state.cursor == {"running": 3}
    assert state.baselined_at is None
    # Same ``at``: the later-recorded event comes first.
    assert await store.recent_events(T0, [], 10) == [e2, e1]


async def test_commit_tick_is_all_or_nothing(store: SqlStore) -> None:
    j1 = job("j1")
    e1 = event(j1)
    broken_outcome = Outcome("prod", "movies", "ImportGraph", "j1", None, T0)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="refused"):
        await store.commit_tick(
            tick(snapshots=[snap(j1)], events=[e1], outcomes=[broken_outcome], deliveries=[delivery(e1)])
        )
    # Snapshots and events were written before the outcome failed; none of it remains.
    assert await store.snapshots("prod", ["j1"]) == {}
    assert await store.recent_events(T0 - timedelta(days=1), [], 10) == []
    assert (await store.health(T0)).outbox_pending == 0
    assert await store.poll_state("prod") is None
    # And the event was not burnt: the same tick, corrected, records it.
    ok = await store.commit_tick(tick(snapshots=[snap(j1)], events=[e1], deliveries=[delivery(e1)]))
    assert ok.new_events == (e1,)
    assert len(ok.outbox_ids) == 1


async def test_a_large_tick_writes_its_snapshots_in_slices_all_or_nothing(store: SqlStore) -> None:
    # A 100k-job baseline in one statement holds every row's parameters at once (hundreds of MB).
    batches: list[int] = []

    def count(conn: Any, clause: Any, multiparams: Any, params: Any, options: Any) -> None:
        if getattr(getattr(clause, "table", None), "name", None) == "job_snapshots":
            batches.append(len(multiparams))

    sa_event.listen(store.engine.sync_engine, "before_execute", count)
    try:
        jobs = [job(f"j{i:04d}", "success") for i in range(2500)]
        await store.commit_tick(tick(snapshots=[snap(j) for j in jobs], baseline=True))
        assert batches == [1000, 1000, 500]
        assert len(await store.snapshots("prod", [j.job_id for j in jobs])) == 2500
        # A row the database refuses in the last slice undoes the slices before it.
        fresh = [job(f"k{i:04d}", "success") for i in range(2100)]
        fresh.append(job("k-bad", None))  # type: ignore[arg-type]
        with pytest.raises(StoreError):
            await store.commit_tick(tick(snapshots=[snap(j) for j in fresh]))
        assert await store.snapshots("prod", ["k0000", "k1999", "k2099"]) == {}
    finally:
        sa_event.remove(store.engine.sync_engine, "before_execute", count)


async def test_an_event_is_recorded_and_sent_once(store: SqlStore) -> None:
    e1 = event(job("j1"))
    first = await store.commit_tick(tick(events=[e1, e1], deliveries=[delivery(e1)]))
    assert first.new_events == (e1,)
    assert len(first.outbox_ids) == 1
    # The same transition seen again (a restart, another replica): nothing new, no second message.
    again = await store.commit_tick(tick(when=at(60), events=[e1], deliveries=[delivery(e1)]))
    assert again.new_events == ()
    assert again.outbox_ids == ()
    # Mixed with a new event, only the new one is delivered.
    e2 = event(job("j2"), when=at(120))
    mixed = await store.commit_tick(tick(when=at(120), events=[e1, e2], deliveries=[delivery(e1, e2)]))
    assert mixed.new_events == (e2,)
    item = await store.outbox_item(mixed.outbox_ids[0])
    assert item is not None
    assert item.delivery.events == (e2,)
    assert (await store.health(at(120))).outbox_pending == 2
    assert len(await store.recent_events(T0, [], 10)) == 2


async def test_muted_deliveries_are_recorded_for_new_events_only(store: SqlStore) -> None:
    e1 = event(job("j1"))
    muted = MutedDelivery(delivery(e1), mute_id=5)
    await store.commit_tick(tick(events=[e1], muted=[muted]))
    await store.commit_tick(tick(when=at(60), events=[e1], muted=[muted]))
    async with store.transaction() as conn:
        rows = (await conn.execute(select(muted_deliveries))).all()
    assert len(rows) == 1
    assert (rows[0].mute_id, rows[0].channel, rows[0].graph) == (5, "C1", "movies")
    assert codec.events_from_json(rows[0].events) == (e1,)
    assert (await store.health(T0)).outbox_pending == 0


async def test_poll_state_keeps_first_baseline_and_counts_failures(store: SqlStore) -> None:
    await store.record_poll_error("prod", T0, "GES answered HTTP 503")
    await store.record_poll_error("prod", at(60), "timeout")
    state = await store.poll_state("prod")
    assert state is not None
    assert (state.consecutive_failures, state.last_error, state.last_attempt_at) == (2, "timeout", at(60))
    assert state.last_success_at is None

    await store.commit_tick(tick(when=at(120), baseline=True, cursor={"a": 1}))
    await store.commit_tick(tick(when=at(180), baseline=True))
    await store.commit_tick(tick(when=at(240)))
    state = await store.poll_state("prod")
    assert state is not None
    assert state.baselined_at == at(120)
    assert (state.consecutive_failures, state.last_error, state.last_success_at) == (0, None, at(240))
    assert state.cursor == {}


# ---------------------------------------------------------------------- outbox


async def _enqueue(store: SqlStore, n: int, when: datetime = T0) -> list[int]:
    ids: list[int] = []
    for i in range(n):
        e = event(job(f"j{i}"), when=when)
        ids.extend((await store.commit_tick(tick(when=when, events=[e], deliveries=[delivery(e)]))).outbox_ids)
    return ids


async def test_claim_hands_out_due_rows_oldest_first_under_a_lease(store: SqlStore) -> None:
    ids = await _enqueue(store, 3)
    later = (await store.enqueue([delivery(event(job("late"), when=at(100)))], at(100)))[0]

    claimed = await store.claim_outbox("w1", at(10), limit=2, lease_seconds=30)
    assert [c.id for c in claimed] == ids[:2]
    assert all(c.attempts == 1 for c in claimed)
    # A live claim is not handed out again; the not-yet-due row waits.
    rest = await store.claim_outbox("w2", at(20), limit=10, lease_seconds=30)
    assert [c.id for c in rest] == [ids[2]]
    assert await store.claim_outbox("w2", at(30), limit=10, lease_seconds=30) == []
    # w1 died: its lease ran out at t=40, so its rows are claimable again.
    again = await store.claim_outbox("w2", at(41), limit=10, lease_seconds=30)
    assert [c.id for c in again] == ids[:2]
    assert all(c.attempts == 2 for c in again)
    # At t=100 the last row is due, and every earlier lease has run out.
    late = await store.claim_outbox("w3", at(100), limit=10, lease_seconds=30)
    assert [c.id for c in late] == [*ids, later]


async def test_retry_sent_and_dead_transitions(store: SqlStore) -> None:
    a, b, c = await _enqueue(store, 3)
    await store.claim_outbox("w", T0, limit=10, lease_seconds=3600)

    await store.mark_retry(a, "ratelimited", at(90))
    retried = await store.outbox_item(a)
    assert retried is not None
    assert (retried.state, retried.last_error, retried.next_attempt_at) == (OutboxState.PENDING, "ratelimited", at(90))
    assert await store.claim_outbox("w", at(60), limit=10, lease_seconds=30) == []
    assert [i.id for i in await store.claim_outbox("w", at(90), limit=10, lease_seconds=7200)] == [a]

    posted = PostedMessage("C1", "1714564800.000100", "prod", "movies", ("ImportGraph",), b, at(1))
    await store.mark_sent(b, "1714564800.000100", at(1), posted)
    sent = await store.outbox_item(b)
    assert sent is not None
    assert (sent.state, sent.ts) == (OutboxState.SENT, "1714564800.000100")

    await store.mark_dead(c, "channel_not_found", at(2))
    dead = await store.outbox_item(c)
    assert dead is not None
    assert (dead.state, dead.last_error) == (OutboxState.DEAD, "channel_not_found")

    # Neither sent nor dead rows are ever claimed again, even after their leases would have ended.
    assert await store.claim_outbox("w", at(5000), limit=10, lease_seconds=30) == []
    health = await store.health(at(5000))
    assert (health.outbox_pending, health.outbox_dead, health.oldest_pending_at) == (1, 1, T0)


async def test_concurrent_claimers_never_share_a_row(store: SqlStore, db_url: str) -> None:
    ids = set(await store.enqueue([delivery(event(job(f"j{i}"))) for i in range(60)], T0))
    other = SqlStore(db_url)  # a second replica: its own engine and connections
    seen: list[tuple[str, int]] = []

    async def worker(s: SqlStore, name: str) -> None:
        while batch := await s.claim_outbox(name, at(1), limit=3, lease_seconds=300):
            seen.extend((name, item.id) for item in batch)

    try:
        await asyncio.gather(*(worker(s, f"{s is other}-{i}") for s in (store, other) for i in range(3)))
    finally:
        await other.close()
    claimed = [i for _, i in seen]
    assert sorted(claimed) == sorted(ids)  # every row once, none twice
    assert len({name for name, _ in seen}) > 1


async def test_message_for_failure_finds_the_message_that_reported_the_job(store: SqlStore) -> None:
    a, b, c = await _enqueue(store, 3)
    first = PostedMessage("C1", "100.1", "prod", "movies", ("build", "load"), a, at(1), job_ids=("j-a", "j-b"))
    await store.mark_sent(a, "100.1", at(1), first)
    # A newer failure of the same graph and job name: it does not take over j-a's recovery.
    await store.mark_sent(
        b, "100.2", at(2), PostedMessage("C1", "100.2", "prod", "movies", ("load",), b, at(2), job_ids=("j-c",))
    )
    # The same failure reported in another channel is that channel's message.
    await store.mark_sent(
        c, "100.3", at(3), PostedMessage("C2", "100.3", "prod", "movies", ("load",), c, at(3), job_ids=("j-a",))
    )

    assert await store.message_for_failure("C1", "prod", "j-a") == first
    assert await store.message_for_failure("C1", "prod", "j-b") == first
    newer = await store.message_for_failure("C1", "prod", "j-c")
    assert newer is not None
    assert (newer.ts, newer.job_ids) == ("100.2", ("j-c",))
    other = await store.message_for_failure("C2", "prod", "j-a")
    assert other is not None
    assert other.ts == "100.3"
    # Never a message about another job, project or channel.
    assert await store.message_for_failure("C1", "prod", "j-unknown") is None
    assert await store.message_for_failure("C1", "dev", "j-a") is None
    assert await store.message_for_failure("C3", "prod", "j-a") is None

    # Marked recovered, it is still the message of its jobs (a later recovery threads there too).
    await store.mark_message_recovered("C1", "100.1")
    recovered = await store.message_for_failure("C1", "prod", "j-b")
    assert recovered is not None
    assert (recovered.ts, recovered.recovered) == ("100.1", True)


async def test_a_message_posted_twice_is_found_by_its_newest_copy(store: SqlStore) -> None:
    # The crash window: the same row posted twice; the second copy is the one recorded last.
    [row] = await _enqueue(store, 1)
    for n, ts in enumerate(("100.1", "100.9"), start=1):
        await store.mark_sent(
            row, ts, at(n), PostedMessage("C1", ts, "prod", "movies", ("load",), row, at(n), job_ids=("j-a",))
        )
        async with store.transaction(write=True) as conn:  # pending again, as after a lost record
            await conn.execute(outbox.update().where(outbox.c.id == row).values(state=OutboxState.PENDING))
    found = await store.message_for_failure("C1", "prod", "j-a")
    assert found is not None
    assert found.ts == "100.9"


async def test_a_worker_whose_claim_ran_out_cannot_settle_the_row(store: SqlStore) -> None:
    [row] = await _enqueue(store, 1)
    [mine] = await store.claim_outbox("w1", T0, limit=1, lease_seconds=30)
    assert mine.id == row
    # w1 stalls past its lease; w2 takes the row over.
    [theirs] = await store.claim_outbox("w2", at(31), limit=1, lease_seconds=30)
    assert theirs.id == row

    posted = PostedMessage("C1", "100.1", "prod", "movies", ("load",), row, at(32), job_ids=("j0",))
    reply = ThreadReply(parent_id=row, part=1, thread_ts="100.1", text="more", blocks=())
    stale = await store.mark_sent(row, "100.1", at(32), posted, worker="w1", replies=[reply], lease_seconds=30)
    assert stale == MarkedSent(applied=False)
    assert not await store.mark_retry(row, "ratelimited", at(90), worker="w1")
    assert not await store.mark_dead(row, "channel_not_found", at(32), worker="w1")
    item = await store.outbox_item(row)
    assert item is not None
    assert (item.state, item.ts, item.last_error) == (OutboxState.PENDING, None, None)
    # Nothing of what the stale worker wanted to record was written.
    assert await store.message_for_failure("C1", "prod", "j0") is None
    assert (await store.health(at(32))).outbox_pending == 1

    assert (await store.mark_sent(row, "100.2", at(33), None, worker="w2")).applied
    # Once sent, nobody sets it back to pending or dead — not even its last holder.
    assert not await store.mark_retry(row, "timeout", at(90), worker="w1")
    assert not await store.mark_retry(row, "timeout", at(90), worker="w2")
    assert not await store.mark_dead(row, "is_archived", at(34), worker="w2")
    assert not (await store.mark_sent(row, "100.3", at(34), None, worker="w2")).applied
    item = await store.outbox_item(row)
    assert item is not None
    assert (item.state, item.ts) == (OutboxState.SENT, "100.2")
    assert await store.claim_outbox("w1", at(5000), limit=10, lease_seconds=30) == []


async def test_mark_sent_writes_the_rows_that_continue_it_in_the_same_transaction(store: SqlStore) -> None:
    recoveries = delivery(
        event(job("r1", "success"), EventKind.RECOVERED), event(job("r2", "success"), EventKind.RECOVERED)
    )
    alert_id, recovery_id = await store.enqueue([delivery(event(job("j0")), event(job("j1"))), recoveries], T0)
    await store.claim_outbox("w1", T0, limit=10, lease_seconds=60)
    blocks = ({"type": "section", "text": {"type": "mrkdwn", "text": "*Job id*\n`j1` <ok> & \u00e9 \U0001f534"}},)
    replies = [
        ThreadReply(parent_id=alert_id, part=2, thread_ts="100.1", text="more 2/2", blocks=()),
        ThreadReply(parent_id=alert_id, part=1, thread_ts="100.1", text="more 1/2", blocks=blocks),
    ]
    marked = await store.mark_sent(alert_id, "100.1", at(1), None, worker="w1", replies=replies, lease_seconds=60)
    assert marked.applied
    first, second = marked.rows
    assert first.id < second.id  # in part order: the order they go out in
    assert first.reply == ThreadReply(parent_id=alert_id, part=1, thread_ts="100.1", text="more 1/2", blocks=blocks)
    assert second.reply == ThreadReply(parent_id=alert_id, part=2, thread_ts="100.1", text="more 2/2", blocks=())
    parent = await store.outbox_item(alert_id)
    assert parent is not None
    # A reply row carries its alert's delivery, is pending and already claimed by the worker.
    assert {r.delivery for r in marked.rows} == {parent.delivery}
    assert {(r.state, r.attempts) for r in marked.rows} == {(OutboxState.PENDING, 1)}
    assert await store.outbox_item(first.id) == first
    assert await store.claim_outbox("w2", at(30), limit=10, lease_seconds=60) == []
    assert not await store.mark_retry(first.id, "timeout", at(40), worker="w2")

    # The rest of a recovery row: what is left of its delivery, as a new row.
    rest = delivery(recoveries.events[1])
    moved = await store.mark_sent(recovery_id, "100.2", at(2), None, worker="w1", rest=rest, lease_seconds=60)
    [rest_row] = moved.rows
    assert (rest_row.delivery, rest_row.reply, rest_row.attempts) == (rest, None, 1)

    # The worker dies: its claims expire and any worker delivers the rows.
    again = await store.claim_outbox("w2", at(63), limit=10, lease_seconds=60)
    assert [r.id for r in again] == [first.id, second.id, rest_row.id]
    assert [r.attempts for r in again] == [2, 2, 2]
    # Without a worker the rows are written due at once, unclaimed.
    [third] = await _enqueue(store, 1)
    unclaimed = await store.mark_sent(third, "100.3", at(3), None, replies=[replies[0]], lease_seconds=60)
    assert [(r.attempts, r.reply is not None) for r in unclaimed.rows] == [(0, True)]
    assert [r.id for r in await store.claim_outbox("w3", at(3), limit=10, lease_seconds=60)] == [unclaimed.rows[0].id]


async def test_upgrading_an_0001_database_keeps_recoveries_threading(db_url: str) -> None:
    # A database of the first release with one alert posted: after the upgrade its failed jobs
    # are found by id; downgrading gives the job names back.
    await migrate.upgrade(db_url, "0001")
    failure = event(job("j-old", job_name="ImportGraph"))
    success = event(job("j-fine", "success", job_name="BuildIndex"), EventKind.SUCCEEDED)
    engine = create_engine(db_url, pooled=False)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO outbox (id, channel, project, graph, events, subscription_ids, state, attempts, "
                    "created_at, next_attempt_at, ts) VALUES (1, 'C1', 'prod', 'movies', :events, '[]', 'sent', 1, "
                    ":t, :t, '100.1')"
                ),
                {"events": json.dumps(codec.events_to_json([failure, success])), "t": T0},
            )
            await conn.execute(
                text(
                    "INSERT INTO posted_messages (channel, ts, project, graph, job_names, outbox_id, posted_at, "
                    "recovered) VALUES ('C1', '100.1', 'prod', 'movies', :names, 1, :t, false)"
                ),
                {"names": json.dumps(["ImportGraph"]), "t": T0},
            )
            await conn.execute(
                text("INSERT INTO posted_message_jobs (channel, ts, job_name) VALUES ('C1', '100.1', 'ImportGraph')")
            )
    finally:
        await engine.dispose()

    await migrate.upgrade(db_url)
    upgraded = SqlStore(db_url)
    try:
        found = await upgraded.message_for_failure("C1", "prod", "j-old")
        assert found is not None
        assert (found.ts, found.job_names, found.job_ids, found.outbox_id) == ("100.1", ("ImportGraph",), ("j-old",), 1)
        assert await upgraded.message_for_failure("C1", "prod", "j-fine") is None
    finally:
        await upgraded.close()

    engine = create_engine(db_url, pooled=False)
    try:
        async with engine.begin() as conn:

            def down(sync: Connection) -> None:
                cfg = migrate.alembic_config()
                cfg.attributes["connection"] = sync
                command.downgrade(cfg, "0001")

            await conn.run_sync(down)
            rows = (await conn.execute(text("SELECT channel, ts, job_name FROM posted_message_jobs"))).all()
    finally:
        await engine.dispose()
    assert [tuple(r) for r in rows] == [("C1", "100.1", "ImportGraph")]


# ---------------------------------------------------------------------- subscriptions and mutes


async def test_subscriptions_add_replace_remove_and_break(store: SqlStore) -> None:
    any_project = await store.add_subscription(
        Subscription(id=0, channel="C1", graph_pattern="prod-*", created_by="U1", created_at=T0)
    )
    one_project = await store.add_subscription(
        Subscription(
            id=0,
            channel="C1",
            graph_pattern="prod-*",
            project="prod",
            kinds=frozenset({EventKind.STUCK}),
            job_names=frozenset({"b", "a"}),
            team="T1",
        )
    )
    assert any_project.id > 0
    assert one_project.id != any_project.id
    assert any_project.project is None
    assert any_project.source == "db"
    assert (one_project.project, one_project.job_names, one_project.kinds) == (
        "prod",
        frozenset({"a", "b"}),
        frozenset({EventKind.STUCK}),
    )

    # Same (channel, pattern, project) again — also for "any project" — replaces, keeping the id.
    replaced = await store.add_subscription(
        Subscription(id=0, channel="C1", graph_pattern="prod-*", kinds=frozenset({EventKind.SUCCEEDED}))
    )
    assert replaced.id == any_project.id
    assert replaced.kinds == frozenset({EventKind.SUCCEEDED})
    await store.add_subscription(Subscription(id=0, channel="C2", graph_pattern="*"))
    assert [s.id for s in await store.subscriptions("C1")] == sorted([any_project.id, one_project.id])
    assert len(await store.subscriptions()) == 3

    broken = await store.mark_channel_broken("C1", "channel_not_found", T0)
    assert {s.broken for s in broken} == {"channel_not_found"}
    assert len(broken) == 2
    assert {s.id for s in (await store.health(T0)).broken_subscriptions} == {any_project.id, one_project.id}
    await store.mark_channel_broken("C1", None, T0)
    assert (await store.health(T0)).broken_subscriptions == ()

    assert await store.remove_subscription("C1", "prod-*") == 2
    assert await store.remove_subscription("C1", "prod-*") == 0
    assert [s.channel for s in await store.subscriptions()] == ["C2"]


async def test_mutes_in_force_and_expired(store: SqlStore) -> None:
    short = await store.add_mute(Mute(id=0, channel="C1", graph_pattern="movies", until=at(60), created_by="U1"))
    long = await store.add_mute(Mute(id=0, channel="C1", graph_pattern="prod-*", until=at(3600), created_at=T0))
    other = await store.add_mute(Mute(id=0, channel="C2", graph_pattern="*", until=at(3600)))
    assert short.id > 0
    assert short == Mute(short.id, "C1", "movies", at(60), "U1", None)

    assert await store.mutes(at(30)) == [short, long, other]
    assert await store.mutes(at(30), "C1") == [short, long]
    assert await store.mutes(at(60), "C1") == [long]  # ``until`` is exclusive
    assert await store.mutes(at(4000)) == []
    assert await store.remove_mutes("C1", "prod-*") == 1
    assert await store.mutes(at(30), "C1") == [short]


async def test_muting_again_extends_the_one_mute_and_purges_ended_ones(store: SqlStore) -> None:
    first = await store.add_mute(Mute(0, "C1", "g*", at(3600), "U1", at(0), exact=True))
    pattern = await store.add_mute(Mute(0, "C1", "g*", at(600), "U1", at(0)))
    assert pattern.id != first.id  # the pattern g* and the graph named g* are different mutes
    again = await store.add_mute(Mute(0, "C1", "g*", at(1800), "U2", at(60), exact=True))
    # The same row; a shorter press never shortens it; the latest asker is credited.
    assert (again.id, again.until, again.created_by, again.exact) == (first.id, at(3600), "U2", True)
    later = await store.add_mute(Mute(0, "C1", "g*", at(7200), "U3", at(120), exact=True))
    assert (later.id, later.until) == (first.id, at(7200))
    # The pattern mute ended at 600 s: the next mute (any channel) deletes it.
    await store.add_mute(Mute(0, "C2", "other", at(9000), "U1", at(700)))
    assert {(m.channel, m.graph_pattern) for m in await store.mutes(at(-1))} == {("C1", "g*"), ("C2", "other")}
    assert await store.purge_mutes(at(7200)) == 1
    assert [m.graph_pattern for m in await store.mutes(at(-1))] == ["other"]


# ---------------------------------------------------------------------- leases


async def test_lease_take_renew_refuse_expire_release(store: SqlStore) -> None:
    assert await store.try_lease("poll:prod", "a", T0, 30)
    assert not await store.try_lease("poll:prod", "b", at(10), 30)
    assert await store.try_lease("poll:prod", "a", at(20), 30)  # renewal extends to t=50
    assert not await store.try_lease("poll:prod", "b", at(45), 30)
    assert await store.try_lease("poll:prod", "b", at(50), 30)  # expired: taken over
    assert not await store.try_lease("poll:prod", "a", at(60), 30)
    await store.release_lease("poll:prod", "a")  # not a's any more: no effect
    assert not await store.try_lease("poll:prod", "c", at(61), 30)
    await store.release_lease("poll:prod", "b")
    assert await store.try_lease("poll:prod", "c", at(62), 30)
    assert await store.try_lease("poll:dev", "a", at(62), 30)  # leases are independent


async def test_instance_guard_refuses_a_second_live_process(db_url: str) -> None:
    # Two `ges-bot run` on one database: two stores, as two processes would have.
    first, second = await open_store(db_url), await open_store(db_url)
    try:
        assert await first.try_lease("instance", "host-a:1", T0, 90)
        assert not await second.try_lease("instance", "host-b:2", at(30), 90)
        assert await second.lease_holder("instance", at(30)) == ("host-a:1", at(90))
        assert await first.try_lease("instance", "host-a:1", at(60), 90)  # the live one renews
        assert not await second.try_lease("instance", "host-b:2", at(149), 90)
        # The first died and stopped renewing: after expiry the second is admitted.
        assert await second.try_lease("instance", "host-b:2", at(150), 90)
        assert not await first.try_lease("instance", "host-a:1", at(151), 90)
        assert await first.lease_holder("instance", at(500)) is None
    finally:
        await first.close()
        await second.close()


async def test_concurrent_lease_takers_get_exactly_one_winner(store: SqlStore, db_url: str) -> None:
    other = SqlStore(db_url)
    try:
        results = await asyncio.gather(
            *(s.try_lease("poll:prod", f"h{i}-{n}", T0, 30) for n, s in enumerate((store, other)) for i in range(4))
        )
    finally:
        await other.close()
    assert results.count(True) == 1


# ---------------------------------------------------------------------- queries


async def _jobs_fixture(store: SqlStore) -> dict[str, Job]:
    jobs = {
        "a": job("a", "failed", graph="prod-movies", job_name="load", begin=at(100)),
        "b": job("b", "success", graph="prod-music", job_name="load", begin=at(200)),
        "c": job("c", "running", graph="Prod-movies", job_name="build", begin=at(300)),
        "d": job("d", "failed", graph="dev_1", job_name="load", end=at(400)),  # no begin time
        "e": job("e", "failed", graph="devx1", job_name="load", begin=at(50)),
        "f": job("f", "partiallyFailed", graph="prod-100%", begin=at(500)),
    }
    await store.commit_tick(tick(snapshots=[snap(j) for j in jobs.values()]))
    await store.commit_tick(
        tick(project="dev", snapshots=[snap(job("z", graph="prod-movies", begin=at(600)), project="dev")])
    )
    return jobs


async def _ids(store: SqlStore, **kw: object) -> list[str]:
    return [s.job.job_id for s in await store.query_jobs(JobQuery(**kw))]  # type: ignore[arg-type]


async def test_query_jobs_filters(store: SqlStore) -> None:
    await _jobs_fixture(store)
    assert await _ids(store) == ["z", "f", "d", "c", "b", "a", "e"]  # newest first
    assert await _ids(store, project="prod", limit=2) == ["f", "d"]
    assert await _ids(store, project="prod", statuses=frozenset({"failed", "partiallyFailed"})) == ["f", "d", "a", "e"]
    assert await _ids(store, project="prod", graph_pattern="prod-*") == ["f", "b", "a"]  # case-sensitive
    assert await _ids(store, graph_pattern="prod-m*", project="prod") == ["b", "a"]
    assert await _ids(store, graph_pattern="prod-movies") == ["z", "a"]
    assert await _ids(store, graph_pattern="dev_1") == ["d"]  # _ is literal, not LIKE's any-char
    assert await _ids(store, graph_pattern="dev?1") == ["d", "e"]
    assert await _ids(store, graph_pattern="*100%") == ["f"]
    assert await _ids(store, graph_pattern="[Pp]rod-movies", project="prod") == ["c", "a"]
    assert await _ids(store, graph_pattern="[Pp]rod-*", project="prod", limit=2) == ["f", "c"]
    assert await _ids(store, graph_pattern="*") == ["z", "f", "d", "c", "b", "a", "e"]
    assert await _ids(store, job_name="build") == ["c"]
    assert await _ids(store, job_id="b") == ["b"]
    # since inclusive, until exclusive, on begin_time — or end_time when the job has no begin.
    assert await _ids(store, project="prod", since=at(200), until=at(500)) == ["d", "c", "b"]
    assert await _ids(store, limit=0) == []


async def test_query_jobs_by_placement_uses_end_time_then_begin_time(store: SqlStore) -> None:
    # A job is placed at its end time, or its begin time while it has none (as /gesjobs answers do).
    jobs = [
        job("long", "failed", begin=at(0), end=at(1000)),  # began long before, ended inside
        job("early", "failed", begin=at(100), end=at(150)),  # ended before the range
        job("inside", "success", begin=at(600), end=at(700)),
        job("late", "failed", begin=at(900), end=at(2000)),  # began inside, ends after it
        job("running", "running", begin=at(800)),
        job("begun-after", "running", begin=at(1500)),
        job("no-times", "failed"),
    ]
    await store.commit_tick(tick(snapshots=[snap(j) for j in jobs]))
    assert await _ids(store, project="prod", placed_since=at(500), placed_until=at(1500)) == [
        "running",
        "inside",
        "long",
    ]
    assert await _ids(store, project="prod", placed_since=at(1000), placed_until=at(1000)) == []
    assert await _ids(store, project="prod", placed_since=at(1000)) == ["begun-after", "late", "long"]
    assert await _ids(store, project="prod", placed_until=at(151)) == ["early"]
    assert await _ids(store, project="prod", placed_until=at(150)) == []  # exclusive
    failed = frozenset({"failed"})
    assert await _ids(store, project="prod", statuses=failed, placed_since=at(500), placed_until=at(1500)) == ["long"]


async def test_recent_events_newest_first_by_kind(store: SqlStore) -> None:
    e1 = event(job("1"), EventKind.FAILED, at(0))
    e2 = event(job("2", "success"), EventKind.SUCCEEDED, at(10))
    e3 = JobEvent("prod", EventKind.RECOVERED, job("3", "success"), at(20), "running", recovers_job_id="1")
    e4 = event(job("4", "running"), EventKind.STUCK, at(30))
    await store.commit_tick(tick(events=[e1, e2, e3, e4]))
    assert await store.recent_events(at(0), [], 10) == [e4, e3, e2, e1]
    assert await store.recent_events(at(10), [], 10) == [e4, e3, e2]
    assert await store.recent_events(at(0), [EventKind.FAILED, EventKind.RECOVERED], 10) == [e3, e1]
    assert await store.recent_events(at(0), [], 1) == [e4]


async def test_health_figures(store: SqlStore) -> None:
    await store.record_poll_error("b-project", at(5), "GES answered HTTP 401 APIG.0301")
    await store.commit_tick(tick(when=at(10)))
    a, _b = await store.enqueue([delivery(), delivery(channel="C2")], at(20))
    await store.mark_dead(a, "is_archived", at(21))
    await store.add_subscription(Subscription(id=0, channel="C9", graph_pattern="*", broken="is_archived"))
    h = await store.health(at(30))
    assert [p.project for p in h.polls] == ["b-project", "prod"]
    assert h.polls[0].consecutive_failures == 1
    assert (h.outbox_pending, h.outbox_dead, h.oldest_pending_at) == (1, 1, at(20))
    assert [s.channel for s in h.broken_subscriptions] == ["C9"]


# ---------------------------------------------------------------------- failures


async def test_unreachable_postgres_is_a_store_error_that_says_what_to_check() -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://ges:hunter2@127.0.0.1:{port}/gesbot"
    with pytest.raises(StoreError) as err:
        await open_store(url)
    text = str(err.value)
    assert f"127.0.0.1:{port}" in text
    assert "PostgreSQL is running" in text
    assert "hunter2" not in text
    # Without migration the same: failure is a StoreError, never a driver exception.
    with pytest.raises(StoreError, match="cannot reach"):
        await open_store(url, migrate=False)


async def test_unusable_sqlite_path_is_a_store_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "ges-bot.db"
    with pytest.raises(StoreError, match="directory exists and is writable") as err:
        await open_store(f"sqlite:///{missing}")
    assert str(missing) in str(err.value)


async def test_an_unmigrated_database_asks_for_db_upgrade(db_url: str) -> None:
    with pytest.raises(StoreError, match="ges-bot db upgrade"):
        await open_store(db_url, migrate=False)
    bare = SqlStore(db_url)
    try:
        with pytest.raises(StoreError, match="ges-bot db upgrade"):
            await bare.subscriptions()
    finally:
        await bare.close()


class _TcpProxy:
    """A loopback TCP relay that can be cut and restored: a database that goes away and comes back."""

    def __init__(self, port: int, target_port: int) -> None:
        self.port, self.target_port = port, target_port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        await self._server.wait_closed()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.transport.abort()


@pytest.mark.postgres
async def test_store_recovers_after_postgres_goes_away_and_comes_back(pg_url: str) -> None:
    from sqlalchemy.engine import make_url

    target = make_url(pg_url)
    proxy = _TcpProxy(free_port(), target.port or 5432)
    await proxy.start()
    url = target.set(port=proxy.port).render_as_string(hide_password=False)
    store = await open_store(url)
    try:
        await store.add_subscription(Subscription(id=0, channel="C1", graph_pattern="*"))
        await proxy.stop()  # the server "restarts": live connections die, new ones are refused
        with pytest.raises(StoreError, match="cannot reach"):
            await store.subscriptions()
        with pytest.raises(StoreError, match="cannot reach"):
            await store.try_lease("poll:prod", "a", T0, 30)
        await proxy.start()
        # Same store object, no restart: the pool notices dead connections and reconnects.
        assert [s.channel for s in await store.subscriptions()] == ["C1"]
        assert await store.try_lease("poll:prod", "a", T0, 30)
    finally:
        await store.close()
        with contextlib.suppress(AssertionError):
            await proxy.stop()


async def test_naive_times_are_refused(store: SqlStore) -> None:
    with pytest.raises(StoreError, match="aware UTC"):
        await store.mutes(datetime(2024, 1, 1))


async def test_snapshots_of_many_ids_at_once(store: SqlStore) -> None:
    # Chunked IN lists: more ids than one statement may bind on SQLite.
    jobs = [job(f"j{i:05d}", "running") for i in range(1200)]
    await store.commit_tick(tick(snapshots=[snap(j) for j in jobs]))
    got = await store.snapshots("prod", [j.job_id for j in jobs])
    assert len(got) == 1200
    async with store.transaction() as conn:
        from ges_bot.store.tables import job_snapshots

        assert (await conn.execute(select(func.count()).select_from(job_snapshots))).scalar_one() == 1200


async def test_unsubscribe_for_one_project_keeps_the_others(store: SqlStore) -> None:
    for project in ("prod", "staging", None):
        await store.add_subscription(Subscription(id=0, channel="C1", graph_pattern="movies", project=project))
    assert await store.remove_subscription("C1", "movies", "staging") == 1
    assert sorted(str(s.project) for s in await store.subscriptions("C1")) == ["None", "prod"]
    assert await store.remove_subscription("C1", "movies") == 2
    assert await store.subscriptions("C1") == []
