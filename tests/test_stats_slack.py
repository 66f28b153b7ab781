"""``/gesjobs stats`` end to end: signed command → the real bolt app → the store → a PNG uploaded
with the external flow to the Slack stand-in → an answer whose image block shows that file.

Uses the harness of ``tests/test_slackapp.py`` (the same loopback servers and fresh bots).
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from PIL import Image
from slack_sdk.web.async_client import AsyncWebClient

from ges_bot.digests import DigestRunner, RunReport
from ges_bot.domain import Job, Subscription
from ges_bot.standin.slack import DEFAULT_BOT_TOKEN, Channel, Fault
from tests.test_slackapp import NOW, Bot, Servers, running_bot, seen, servers

pytestmark = pytest.mark.asyncio(loop_scope="module")
__all__ = ["servers"]  # the module-scoped fixture, shared with test_slackapp's harness


@pytest_asyncio.fixture(loop_scope="module")
async def bot(servers: Servers, tmp_path: Path) -> AsyncIterator[Bot]:
    async with running_bot(servers, tmp_path) as b:
        yield b


def ran(job_id: str, status: str, hours_ago: float, graph: str = "prod-movies", minutes: float = 20) -> Job:
    begin = NOW - timedelta(hours=hours_ago)
    end = None if status == "running" else begin + timedelta(minutes=minutes)
    return Job(job_id, status, job_name="ImportGraph", graph=graph, begin_time=begin, end_time=end)


def images(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in answer.get("blocks", []) if b.get("type") == "image"]


async def test_stats_answers_with_a_summary_and_an_uploaded_chart(bot: Bot) -> None:
    await bot.store.add_subscription(Subscription(id=0, channel="C0ALERTS", graph_pattern="prod-*"))
    await bot.remember(
        ran("ok-1", "success", 30),
        ran("ok-2", "success", 6),
        ran("bad-1", "failed", 5, graph="prod-fraud"),
        ran("half-1", "partiallyFailed", 28, minutes=95),
        ran("busy-1", "running", 1),
        ran("elsewhere", "failed", 2, graph="test-graph"),  # not subscribed here
        ran("old", "failed", 24 * 9),  # the previous period
    )
    answer = await bot.ask("stats", user_id="U0ALICE", channel_id="C0ALERTS")
    text = seen(answer)
    assert "Jobs per day" in text
    assert "graphs this channel subscribes to (`prod-*`)" in text
    assert "*5 jobs*: 🟢 2 succeeded · 🟠 1 partially failed · 🔴 1 failed · 🔵 1 still running" in text
    assert "Failure rate *50.0 %* (2 of 4 finished jobs failed or partially failed)" in text
    assert "down 50.0 points from 100.0 % the period before" in text
    assert "Slowest import: `prod-movies`, 1h 35m (job `half-1`)" in text
    assert "test-graph" not in text
    [image] = images(answer)
    file_id = image["slack_file"]["id"]
    # Uploaded privately: completeUploadExternal named no channel.
    [complete] = bot.slack.calls_to("files.completeUploadExternal")
    assert "channel_id" not in complete.params
    assert "channels" not in complete.params
    assert complete.answer["files"][0]["id"] == file_id
    picture = Image.open(io.BytesIO(bot.slack.file_content(file_id) or b""))
    assert picture.size == (1200, 675)
    # Alice is in Berlin: NOW (23:30 UTC on the 10th) is already the 11th there, the last day drawn.
    assert image["alt_text"].startswith("Jobs per day, Thu 5 Mar – Wed 11 Mar 2026 (Europe/Berlin).")
    assert "Tue 10 Mar: 1 succeeded, 1 failed, 1 still running" in image["alt_text"]


async def test_stats_by_graph_and_duration(bot: Bot) -> None:
    await bot.remember(ran("a", "failed", 3, graph="g1"), ran("b", "success", 4, graph="g2"))
    by_graph = await bot.ask("stats by graph public", user_id="U0BOB", channel_id="C0GENERAL")
    assert by_graph["response_type"] == "in_channel"
    assert "Failure rate per graph" in seen(by_graph)
    assert "g1: 1 of 1 failed; g2: 0 of 1 failed" in images(by_graph)[0]["alt_text"]
    durations = await bot.ask("stats duration", user_id="U0BOB", channel_id="C0GENERAL")
    assert "ImportGraph: p50 20m 00s, p95 20m 00s" in images(durations)[0]["alt_text"]


async def test_stats_for_a_graph_with_no_jobs(bot: Bot) -> None:
    answer = await bot.ask("stats graph nothing-here last 30d", user_id="U0ALICE", channel_id="C0GENERAL")
    assert "No jobs ran in this period." in seen(answer)
    assert "graph `nothing-here`" in seen(answer)
    assert len(images(answer)) == 1


async def test_without_files_write_the_numbers_still_arrive(bot: Bot) -> None:
    await bot.remember(ran("a", "failed", 3))
    bot.slack.faults.append(Fault("files.getUploadURLExternal", error="missing_scope"))
    answer = await bot.ask("stats", user_id="U0ALICE", channel_id="C0GENERAL")
    assert images(answer) == []
    text = seen(answer)
    assert "*1 job*: 🔴 1 failed" in text
    assert "could not be uploaded to Slack (missing_scope)" in text
    assert "files:write" in text


async def test_digest_set_shown_and_turned_off_from_slack(bot: Bot) -> None:
    await bot.store.add_subscription(Subscription(id=0, channel="C0ALERTS", graph_pattern="prod-*"))
    answer = await bot.ask("digest daily 09:00", user_id="U0ALICE", channel_id="C0ALERTS")
    text = seen(answer)
    assert "This channel gets a digest `daily 09:00` (Europe/Berlin)" in text
    assert "graphs this channel subscribes to (`prod-*`)" in text
    [schedule] = await bot.store.digest_schedules("C0ALERTS")
    assert (schedule.tz, schedule.at.hour, schedule.weekday, schedule.created_by) == (
        "Europe/Berlin",
        9,
        None,
        "U0ALICE",
    )
    # Bob (New York) changes it to weekly: his zone now applies.
    await bot.ask("digest weekly fri 17:30 always", user_id="U0BOB", channel_id="C0ALERTS")
    [schedule] = await bot.store.digest_schedules("C0ALERTS")
    assert (schedule.tz, schedule.text) == ("America/New_York", "weekly fri 17:30 always")
    shown = seen(await bot.ask("digest", user_id="U0ALICE", channel_id="C0ALERTS"))
    assert "`weekly fri 17:30 always` (America/New_York)" in shown
    off = seen(await bot.ask("digest off", user_id="U0ALICE", channel_id="C0ALERTS"))
    assert "digest is off" in off
    assert await bot.store.digest_schedules("C0ALERTS") == []
    # Off means off: a week of checks sends nothing to the channel.
    client = AsyncWebClient(token=DEFAULT_BOT_TOKEN, base_url=bot.slack.api_url, timeout=10)
    for day in range(8):
        clock = bot.clock.now + timedelta(days=day)
        report = await DigestRunner(bot.store, client, worker="w", clock=lambda c=clock: c).run()
        assert report == RunReport()
    assert await bot.store.digests("C0ALERTS") == []
    assert "This channel gets no digest." in seen(await bot.ask("digest", user_id="U0ALICE", channel_id="C0ALERTS"))
    refused = seen(await bot.ask("digest daily 9am", user_id="U0ALICE", channel_id="C0ALERTS"))
    assert "isn't a time of day" in refused


async def test_home_tab_shows_the_last_7_days_of_the_users_channels(bot: Bot) -> None:
    bot.slack.add_channel(Channel("C0ALERTS", "alerts", members=frozenset({"U0ALICE"})))
    # The stand-in's #general holds everyone unless told otherwise: here it holds neither person.
    general = bot.slack.channels["C0GENERAL"]
    bot.slack.add_channel(Channel("C0GENERAL", "general", members=frozenset()))
    try:
        await bot.store.add_subscription(Subscription(id=0, channel="C0ALERTS", graph_pattern="prod-*"))
        await bot.store.add_subscription(Subscription(id=0, channel="C0GENERAL", graph_pattern="other-*"))
        await bot.remember(
            ran("p1", "failed", 3), ran("p2", "success", 30), ran("o1", "success", 3, graph="other-graph")
        )
        await bot.event({"type": "app_home_opened", "user": "U0ALICE", "channel": "D0ALICE", "tab": "home"})
        view = await bot.slack.wait_for(lambda: bot.slack.home("U0ALICE"))
        text = seen(view)
        assert "*Last 7 days* · Thu 5 Mar – Wed 11 Mar 2026 (Europe/Berlin)" in text
        assert "graphs your channels subscribe to (`prod-*`)" in text
        assert "*2 jobs*: 🟢 1 succeeded · 🔴 1 failed" in text
        assert "other-graph" not in text
        [image] = [b for b in view["blocks"] if b["type"] == "image"]
        assert (bot.slack.file_content(image["slack_file"]["id"]) or b"")[:4] == b"\x89PNG"
        # Opening the tab again shows the same numbers: the chart is not uploaded again.
        uploads = bot.slack.count("files.getUploadURLExternal")
        bot.slack.reset()
        await bot.event({"type": "app_home_opened", "user": "U0ALICE", "channel": "D0ALICE", "tab": "home"})
        again = await bot.slack.wait_for(lambda: bot.slack.home("U0ALICE"))
        assert [b for b in again["blocks"] if b["type"] == "image"] == [image]
        assert uploads == 1
        assert bot.slack.count("files.getUploadURLExternal") == 0
        # Bob is in no subscribed channel: the Home tab says how to get a chart.
        await bot.event({"type": "app_home_opened", "user": "U0BOB", "channel": "D0BOB", "tab": "home"})
        bobs = seen(await bot.slack.wait_for(lambda: bot.slack.home("U0BOB")))
        assert "None of your channels subscribes to a graph yet" in bobs
    finally:
        bot.slack.add_channel(Channel("C0ALERTS", "alerts"))
        bot.slack.add_channel(general)
