"""Digests: schedules in the subscriber's zone, and sending each digest once — with two replicas on
one PostgreSQL store, and across a restart that spans the due time (then it says it is late).

Real stores (SQLite, and PostgreSQL where available), the Slack stand-in on loopback, a fixed clock.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from ges_bot.config import load_config
from ges_bot.digests import DigestRunner
from ges_bot.domain import Delivery, EventKind, Job, JobEvent, Subscription
from ges_bot.errors import ConfigError
from ges_bot.schedule import DigestSchedule, parse_schedule
from ges_bot.standin.slack import DEFAULT_BOT_TOKEN, Channel, Fault, SlackStandIn
from ges_bot.store import open_store
from ges_bot.store.api import DigestState, PostedMessage, Snapshot, Store, TickResult
from tests.support.asgi import serve

SHANGHAI = "Asia/Shanghai"
CHANNEL = "C0DIGEST"
#: 09:00 in Shanghai on Monday 30 Nov 2026.
NINE = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)


# -- schedules (pure) ----------------------------------------------------------------------------


def test_daily_nine_in_shanghai_is_one_utc() -> None:
    schedule = DigestSchedule(CHANNEL, time(9, 0), SHANGHAI)
    assert schedule.latest_due(NINE) == NINE
    assert schedule.latest_due(NINE - timedelta(seconds=1)) == NINE - timedelta(days=1)
    assert schedule.next_due(NINE) == NINE + timedelta(days=1)
    assert schedule.previous_due(NINE) == NINE - timedelta(days=1)
    assert schedule.period_key(NINE) == "daily 2026-11-30T09:00+08:00"


def test_weekly_monday_and_wall_clock_across_dst() -> None:
    weekly = DigestSchedule(CHANNEL, time(9, 0), SHANGHAI, weekday=0)
    assert weekly.latest_due(NINE + timedelta(days=3)) == NINE
    assert weekly.next_due(NINE) == NINE + timedelta(days=7)
    # New York springs forward on Sunday 8 Mar 2026: 09:00 stays 09:00 on the wall clock.
    ny = DigestSchedule(CHANNEL, time(9, 0), "America/New_York")
    assert ny.latest_due(datetime(2026, 3, 7, 15, 0, tzinfo=UTC)) == datetime(2026, 3, 7, 14, 0, tzinfo=UTC)
    assert ny.latest_due(datetime(2026, 3, 9, 15, 0, tzinfo=UTC)) == datetime(2026, 3, 9, 13, 0, tzinfo=UTC)
    assert ny.previous_due(datetime(2026, 3, 9, 13, 0, tzinfo=UTC)) == datetime(2026, 3, 8, 13, 0, tzinfo=UTC)


def test_parse_schedule_and_its_errors() -> None:
    assert parse_schedule("daily 09:00") == (time(9, 0), None, False)
    assert parse_schedule("weekly Monday 7:30 always") == (time(7, 30), 0, True)
    with pytest.raises(ValueError, match="daily 09:00"):
        parse_schedule("hourly")
    with pytest.raises(ValueError, match="time zone"):
        DigestSchedule(CHANNEL, time(9, 0), "Mars/Olympus")


def test_digests_as_code(tmp_path: Path) -> None:
    file = tmp_path / "ges-bot.toml"
    file.write_text(
        '[[digests]]\nchannel = "C0DIGEST"\nschedule = "weekly mon 09:00"\ntz = "Asia/Shanghai"\n'
        '[[digests]]\nchannel = "#ops"\nschedule = "daily 08:30 always"\n',
        encoding="utf-8",
    )
    config = load_config({"GES_BOT_CONFIG": str(file), "GES_BOT_TIMEZONE": "Europe/Berlin"}, require_ges=False)
    assert [(d.channel, d.text, d.tz, d.source) for d in config.digests] == [
        ("C0DIGEST", "weekly mon 09:00", SHANGHAI, "config"),
        ("#ops", "daily 08:30 always", "Europe/Berlin", "config"),
    ]
    file.write_text('[[digests]]\nchannel = "C1"\nschedule = "at nine"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[\[digests\]\] #1"):
        load_config({"GES_BOT_CONFIG": str(file)}, require_ges=False)


# -- sending -------------------------------------------------------------------------------------


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    stand_in = SlackStandIn(channels=[Channel(CHANNEL, "digest")])
    async with serve(stand_in.app) as url:
        stand_in.base_url = url
        yield stand_in


def runner(store: Store, slack: SlackStandIn, clock: Clock, worker: str, **kwargs: Any) -> DigestRunner:
    client = AsyncWebClient(token=DEFAULT_BOT_TOKEN, base_url=slack.api_url, timeout=10)
    return DigestRunner(store, client, worker=worker, clock=clock, **kwargs)


def import_job(job_id: str, status: str, begin: datetime, graph: str = "prod-fraud") -> Job:
    end = None if status == "running" else begin + timedelta(minutes=30)
    return Job(job_id, status, job_name="ImportGraph", graph=graph, begin_time=begin, end_time=end)


async def seed(store: Store, set_at: datetime) -> None:
    """A channel subscribed to prod-*, a digest at 09:00 Shanghai, and a night of imports."""
    await store.add_subscription(Subscription(id=0, channel=CHANNEL, graph_pattern="prod-*"))
    await store.set_digest_schedule(DigestSchedule(CHANNEL, time(9, 0), SHANGHAI, created_at=set_at))
    await remember_night(store, alerted_in=CHANNEL)


async def remember_night(store: Store, *, alerted_in: str | None = None, other_failed: bool = False) -> None:
    """A night of imports on prod-* (two good, a failure, a partial failure) and one on test-graph,
    as the poller records it: the failure alerted in ``alerted_in`` (if any); with
    ``other_failed`` the test-graph job's failure is an event too."""
    night = NINE - timedelta(hours=8)
    jobs = [
        import_job("ok-1", "success", night),
        import_job("ok-2", "success", night + timedelta(hours=1), graph="prod-movies"),
        import_job("bad-1", "failed", night + timedelta(hours=2)),
        import_job("bad-2", "partiallyFailed", night + timedelta(hours=3)),
        import_job("other", "failed", night, graph="test-graph"),
    ]
    at = NINE - timedelta(hours=2)
    events = [
        JobEvent("prod", EventKind.FAILED, jobs[2], at),
        JobEvent("prod", EventKind.PARTIALLY_FAILED, jobs[3], at),
    ]
    if other_failed:
        events.append(JobEvent("prod", EventKind.FAILED, jobs[4], at))
    deliveries = [Delivery(alerted_in, "prod", "prod-fraud", (events[0],))] if alerted_in else []
    await store.commit_tick(
        TickResult(
            project="prod",
            at=at,
            snapshots=[Snapshot("prod", j, at, at, at) for j in jobs],
            events=events,
            outcomes=[],
            deliveries=deliveries,
        )
    )


async def post_alert_of(store: Store, slack: SlackStandIn, job_id: str) -> str:
    """The alert for ``job_id`` as the delivery worker would leave it: posted, and remembered."""
    client = AsyncWebClient(token=DEFAULT_BOT_TOKEN, base_url=slack.api_url, timeout=10)
    posted = await client.chat_postMessage(channel=CHANNEL, text="prod-fraud failed")
    [item] = await store.claim_outbox("w", NINE, 10, 60)
    ts = str(posted["ts"])
    await store.mark_sent(
        item.id,
        ts,
        NINE,
        PostedMessage(CHANNEL, ts, "prod", "prod-fraud", ("ImportGraph",), item.id, NINE, job_ids=(job_id,)),
    )
    return ts


def digests_posted(slack: SlackStandIn) -> list[dict[str, Any]]:
    return [m for m in slack.messages(CHANNEL) if "digest" in str(m.get("text", "")).lower()]


def readable(message: dict[str, Any]) -> str:
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "plain_text") and isinstance(node.get("text"), str):
                parts.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(message.get("blocks", []))
    return "\n".join(parts)


@pytest.mark.postgres
async def test_two_replicas_send_the_nine_oclock_digest_once(pg_url: str, slack: SlackStandIn) -> None:
    first, second = await open_store(pg_url, migrate=True), await open_store(pg_url, migrate=False)
    try:
        await seed(first, set_at=NINE - timedelta(days=2))
        alert_ts = await post_alert_of(first, slack, "bad-1")
        clock = Clock(NINE + timedelta(seconds=30))
        replicas = [runner(first, slack, clock, "replica-a"), runner(second, slack, clock, "replica-b")]
        reports = await asyncio.gather(*(r.run() for r in replicas))
        assert sum(r.sent for r in reports) == 1
        assert sum(r.enqueued for r in reports) == 1
        # Later checks by either replica find nothing new to send.
        clock.now += timedelta(minutes=5)
        again = await asyncio.gather(*(r.run() for r in replicas))
        assert sum(r.sent + r.enqueued for r in again) == 0
        [digest] = digests_posted(slack)
        text = readable(digest)
        assert "Daily digest · Mon 30 Nov 09:00 (Asia/Shanghai)" in text
        assert "Late" not in text
        assert "*4 jobs*: 🟢 2 succeeded · 🟠 1 partially failed · 🔴 1 failed" in text
        assert "test-graph" not in text
        assert "*Needs attention*" in text
        assert f"/archives/{CHANNEL}/p{alert_ts.replace('.', '')}|alert thread>" in text
        assert "`prod-fraud` failed 2 of its last 3 runs" in text
        [image] = [b for b in digest["blocks"] if b["type"] == "image"]
        assert slack.file_content(image["slack_file"]["id"]) is not None
        [row] = await first.digests(CHANNEL)
        assert (row.state, row.period, row.ts) == (DigestState.SENT, "daily 2026-11-30T09:00+08:00", digest["ts"])
    finally:
        await first.close()
        await second.close()


async def test_a_bot_down_at_nine_sends_the_digest_once_when_back_saying_it_is_late(
    db_url: str, slack: SlackStandIn
) -> None:
    store = await open_store(db_url, migrate=True)
    await seed(store, set_at=NINE - timedelta(days=2))
    clock = Clock(NINE - timedelta(minutes=1))
    before = await runner(store, slack, clock, "old-process").run()
    # 08:59: yesterday's digest was due (and is sent now); today's is not due yet.
    assert before.sent + before.quiet == 1
    posted_before = len(digests_posted(slack))
    await store.close()  # the bot goes down before 09:00…

    store = await open_store(db_url, migrate=True)  # …and comes back at 10:30
    try:
        clock = Clock(NINE + timedelta(hours=1, minutes=30))
        back = runner(store, slack, clock, "new-process")
        report = await back.run()
        assert report.sent == 1
        late = digests_posted(slack)[posted_before:]
        assert len(late) == 1
        assert "⏰ *Late*: this digest was due <!date^" in readable(late[0])
        # The chart runs up to the digest's morning: last night's imports are on it.
        [image] = [b for b in late[0]["blocks"] if b["type"] == "image"]
        assert image["alt_text"].startswith("Jobs per day, Tue 24 Nov – Mon 30 Nov 2026 (Asia/Shanghai).")
        assert "Mon 30 Nov: 2 succeeded, 1 partially failed, 1 failed" in image["alt_text"]
        assert "the bot was not running then" in readable(late[0])
        clock.now += timedelta(hours=2)
        assert (await back.run()).sent == 0
        assert len(digests_posted(slack)) == posted_before + 1
    finally:
        await store.close()


async def test_quiet_when_nothing_ran_unless_always(sqlite_url: str, slack: SlackStandIn) -> None:
    store = await open_store(sqlite_url, migrate=True)
    try:
        await store.set_digest_schedule(
            DigestSchedule(CHANNEL, time(9, 0), SHANGHAI, created_at=NINE - timedelta(days=1))
        )
        clock = Clock(NINE + timedelta(minutes=1))
        report = await runner(store, slack, clock, "w").run()
        assert (report.sent, report.quiet) == (0, 1)
        assert digests_posted(slack) == []
        await store.set_digest_schedule(
            DigestSchedule(CHANNEL, time(9, 0), SHANGHAI, always=True, created_at=NINE - timedelta(days=1))
        )
        clock.now += timedelta(days=1)
        assert (await runner(store, slack, clock, "w").run()).sent == 1
        assert "No jobs ran in this period." in readable(digests_posted(slack)[0])
    finally:
        await store.close()


async def test_a_digest_set_after_its_time_starts_the_next_day(sqlite_url: str, slack: SlackStandIn) -> None:
    store = await open_store(sqlite_url, migrate=True)
    try:
        await seed(store, set_at=NINE + timedelta(minutes=10))
        clock = Clock(NINE + timedelta(minutes=20))
        assert (await runner(store, slack, clock, "w").run()).enqueued == 0
        assert await store.digests(CHANNEL) == []
        clock.now = NINE + timedelta(days=1, minutes=1)
        report = await runner(store, slack, clock, "w").run()
        # The night's imports were before this period: nothing ran since, so it stays quiet.
        assert (report.enqueued, report.quiet) == (1, 1)
        assert [r.period for r in await store.digests(CHANNEL)] == ["daily 2026-12-01T09:00+08:00"]
    finally:
        await store.close()


async def test_digest_now_sends_at_once_for_a_channel(sqlite_url: str, slack: SlackStandIn) -> None:
    store = await open_store(sqlite_url, migrate=True)
    try:
        await store.add_subscription(Subscription(id=0, channel=CHANNEL, graph_pattern="prod-*"))
        clock = Clock(NINE + timedelta(hours=3))
        report = await runner(store, slack, clock, "cli").run(channel=CHANNEL, now_due=True, zone=SHANGHAI)
        assert report.sent == 1
        assert "Daily digest · Mon 30 Nov 12:00 (Asia/Shanghai)" in readable(digests_posted(slack)[0])
    finally:
        await store.close()


async def test_a_digest_slack_refuses_is_given_up_not_retried_forever(sqlite_url: str) -> None:
    stand_in = SlackStandIn(channels=[Channel(CHANNEL, "digest", is_archived=True)])
    async with serve(stand_in.app) as url:
        stand_in.base_url = url
        store = await open_store(sqlite_url, migrate=True)
        try:
            await seed(store, set_at=NINE - timedelta(days=2))
            report = await runner(store, stand_in, Clock(NINE + timedelta(minutes=1)), "w").run()
            assert report.failed >= 1
            rows = await store.digests(CHANNEL)
            assert {r.state for r in rows} == {DigestState.DEAD}
            assert rows[0].last_error == "is_archived"
        finally:
            await store.close()


async def test_ges_bot_digest_now_from_the_command_line(tmp_path: Path, slack: SlackStandIn) -> None:
    db = f"sqlite:///{tmp_path / 'bot.db'}"
    store = await open_store(db, migrate=True)
    await store.add_subscription(Subscription(id=0, channel=CHANNEL, graph_pattern="*"))
    await store.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GES_", "HUAWEICLOUD_", "SLACK_"))} | {
        "GES_BOT_DATABASE_URL": db,
        "SLACK_BOT_TOKEN": DEFAULT_BOT_TOKEN,
        "SLACK_API_URL": slack.api_url,
        "GES_BOT_TIMEZONE": SHANGHAI,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ges_bot",
        "digest",
        "--now",
        "--channel",
        CHANNEL,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert "digests: 1 sent, 0 quiet (nothing ran), 0 failed" in out.decode()
    [digest] = digests_posted(slack)
    assert "(Asia/Shanghai)" in readable(digest)
    assert "No jobs ran in this period." in readable(digest)


async def test_a_digest_that_keeps_failing_is_retried_then_given_up(sqlite_url: str, slack: SlackStandIn) -> None:
    store = await open_store(sqlite_url, migrate=True)
    try:
        await seed(store, set_at=NINE - timedelta(days=2))
        slack.faults.append(Fault("chat.postMessage", status=503))
        clock = Clock(NINE + timedelta(minutes=1))
        flaky = runner(store, slack, clock, "w", retry_after_s=60, max_attempts=2)
        first = await flaky.run()
        assert (first.sent, first.failed) == (0, 1)
        [row] = await store.digests(CHANNEL)
        assert (row.state, row.last_error) == (DigestState.PENDING, "service_unavailable")
        clock.now += timedelta(seconds=30)
        assert (await flaky.run()).failed == 0  # not due again yet
        clock.now += timedelta(seconds=31)
        assert (await flaky.run()).failed == 1
        [row] = await store.digests(CHANNEL)
        assert row.state == DigestState.DEAD
        assert digests_posted(slack) == []
    finally:
        await store.close()
