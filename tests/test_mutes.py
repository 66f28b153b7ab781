"""Mutes in the open, tried as a member who would rather nobody noticed: every mute and unmute is
logged and announced in the channel, mute buttons mute exactly the graph they name, repeated presses
extend one mute, and silencing every graph for long is an admin's call.

The real bolt app behind real HTTP, the Slack stand-in and a SQLite store (the harness of
``tests/test_slackapp.py``).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from ges_bot.domain import EventKind, Job, JobEvent, Mute, Subscription, covers_every_graph
from ges_bot.notify import limits, render
from ges_bot.notify.routing import route
from tests import test_slackapp as harness
from tests.test_slackapp import NOW, Bot, Servers, running_bot, seen

# The Slack-app harness's fixtures (its loopback servers live as long as this module).
servers = harness.servers
bot = harness.bot
module_loop = pytest.mark.asyncio(loop_scope="module")

#: The beginning of time, for reading every mute row (expired ones included).
EPOCH = NOW - timedelta(days=3650)


def _announcements(bot: Bot, channel: str) -> list[str]:
    return [seen(m) for m in bot.slack.messages(channel)]


@module_loop
async def test_mute_every_graph_for_30_days_by_a_non_admin_is_refused(bot: Bot) -> None:
    for text in ("mute * 30d", "mute ?* 2d", "mute ** 25h"):
        answer = seen(await bot.ask(text, user_id="U0ALICE"))
        assert "matches every graph, so this would silence every alert in the channel" in answer, text
        assert "Without admin rights a mute like that lasts at most 1d 0h: try `/gesjobs mute" in answer, answer
        assert "`/gesjobs mute" in answer
    assert await bot.store.mutes(NOW) == []
    assert bot.slack.messages("C0GENERAL") == []
    # A day is allowed (and announced like any mute); so is a long mute of some graphs.
    assert "🔇" in seen(await bot.ask("mute * 24h"))
    assert "🔇" in seen(await bot.ask("mute prod-* 30d"))
    assert {m.graph_pattern for m in await bot.store.mutes(NOW)} == {"*", "prod-*"}
    assert len(bot.slack.messages("C0GENERAL")) == 2


@module_loop
async def test_admins_may_mute_every_graph_for_long_and_the_limit_is_configurable(
    servers: Servers, tmp_path: Path
) -> None:
    env = {"GES_BOT_ADMINS": "U0BOB,U0ALICE", "GES_BOT_MAX_WILDCARD_MUTE": "2h"}
    async with running_bot(servers, tmp_path, env=env) as bot:
        assert "🔇" in seen(await bot.ask("mute * 30d", user_id="U0BOB"))
    env = {"GES_BOT_MAX_WILDCARD_MUTE": "2h"}
    async with running_bot(servers, tmp_path, env=env) as bot:
        assert "lasts at most 2h" in seen(await bot.ask("mute * 3h"))
        assert "try `/gesjobs mute * 2h`" in seen(await bot.ask("mute * 3h"))
        assert "🔇" in seen(await bot.ask("mute * 2h"))


@module_loop
async def test_mute_movies_2h_is_announced_in_the_channel_and_logged(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ges_bot")
    await bot.ask("mute movies 2h", user_id="U0ALICE", channel_id="C0ALERTS", channel_name="alerts")
    (post,) = bot.slack.messages("C0ALERTS")
    assert post.get("response_type") is None  # a channel message, not an ephemeral answer
    assert limits.check_message(post) == []
    text = seen(post)
    assert "🔇 <@U0ALICE> muted alerts for graphs matching `movies` in this channel until" in text
    assert f"<!date^{int((NOW + timedelta(hours=2)).timestamp())}^" in text
    assert "(2h 00m from now)" in text
    assert any(
        "U0ALICE muted pattern 'movies' in C0ALERTS until 2026-03-11T01:30:00+00:00" in r.getMessage()
        for r in caplog.records
    ), [r.getMessage() for r in caplog.records]
    listed = seen(await bot.ask("subscriptions", channel_id="C0ALERTS", channel_name="alerts"))
    assert "🔇 `movies` until" in listed
    assert "by <@U0ALICE>" in listed

    await bot.ask("unmute movies", user_id="U0BOB", channel_id="C0ALERTS", channel_name="alerts")
    assert "🔔 <@U0BOB> unmuted alerts for graphs matching `movies` in this channel." in seen(
        bot.slack.messages("C0ALERTS")[-1]
    )
    assert any("U0BOB unmuted 'movies' in C0ALERTS" in r.getMessage() for r in caplog.records)


def _event(graph: str) -> JobEvent:
    job = Job(job_id=f"job-{graph}", status="failed", job_name="ImportGraph", graph=graph)
    return JobEvent(project="prod", kind=EventKind.FAILED, job=job, at=NOW)


@module_loop
async def test_a_mute_button_mutes_exactly_its_graph_and_presses_extend_one_mute(bot: Bot) -> None:
    async def press(action: str) -> None:
        payload = bot.slack.block_action_payload(action, "g*", channel_id="C0ALERTS", user_id="U0BOB")
        await bot.click(payload)
        rid = payload["response_url"].rsplit("/", 1)[1]
        await bot.slack.wait_for(lambda: bot.slack.responses(rid))

    await press(render.ACTION_MUTE_1H)
    bot.clock.now = NOW + timedelta(minutes=30)
    await press(render.ACTION_MUTE_1H)
    (mute,) = await bot.store.mutes(EPOCH)
    assert (mute.graph_pattern, mute.exact, mute.until) == ("g*", True, NOW + timedelta(minutes=90))
    await press(render.ACTION_MUTE_24H)
    (mute,) = await bot.store.mutes(EPOCH)
    assert mute.until == NOW + timedelta(minutes=30, hours=24)
    # Every press was announced, with the graph shown as a name.
    posts = _announcements(bot, "C0ALERTS")
    assert len(posts) == 3
    assert all("🔇 <@U0BOB> muted alerts for graph `g*` in this channel until" in p for p in posts)

    subs = [Subscription(id=1, channel="C0ALERTS", graph_pattern="*")]
    result = route([_event("g*"), _event("gx"), _event("g")], subs, [mute], bot.clock.now)
    assert [d.graph for d in result.deliveries] == ["g", "gx"]
    assert [m.delivery.graph for m in result.muted] == ["g*"]
    assert "(this name only)" in seen(await bot.ask("subscriptions", channel_id="C0ALERTS", channel_name="alerts"))


@module_loop
async def test_expired_mutes_are_purged(bot: Bot) -> None:
    await bot.ask("mute old-* 1h")
    await bot.ask("mute other 2h")
    bot.clock.now = NOW + timedelta(hours=3)
    await bot.ask("mute new 1h")
    assert [m.graph_pattern for m in await bot.store.mutes(EPOCH)] == ["new"]
    await bot.store.add_mute(Mute(id=0, channel="C1", graph_pattern="x", until=NOW + timedelta(hours=4)))
    assert await bot.store.purge_mutes(NOW + timedelta(hours=5)) == 2
    assert await bot.store.mutes(EPOCH) == []


def test_which_patterns_cover_every_graph() -> None:
    for pattern in ("*", "**", "?*", "*?", "[!@]*"):
        assert covers_every_graph(pattern), pattern
    for pattern in ("prod-*", "movies", "?", "a*", "*-prod", "[!a]*"):
        assert not covers_every_graph(pattern), pattern
