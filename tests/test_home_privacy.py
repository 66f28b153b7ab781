"""The Home tab shows a person only the subscriptions of channels they are in, tried as a curious
member: a private channel's id and graphs never reach someone outside it.

The real bolt app behind real HTTP, the Slack stand-in (``users.conversations``) and a SQLite store
(the harness of ``tests/test_slackapp.py``).
"""

from __future__ import annotations

import pytest

from ges_bot.domain import Subscription
from ges_bot.standin.slack import Channel
from tests import test_slackapp as harness
from tests.test_slackapp import Bot, seen

# The Slack-app harness's fixtures (its loopback servers live as long as this module).
servers = harness.servers
bot = harness.bot
pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _home(bot: Bot, user: str) -> str:
    before = bot.slack.count("views.publish")
    await bot.event({"type": "app_home_opened", "user": user, "channel": f"D{user}", "tab": "home"})
    await bot.slack.wait_for(lambda: bot.slack.count("views.publish") > before)
    view = bot.slack.home(user)
    assert view is not None
    return seen(view)


async def test_home_tab_lists_only_the_viewers_channels(bot: Bot) -> None:
    added = [
        Channel("C0SECRET", "secret-project", is_private=True, members=frozenset({"U0BOB"})),
        Channel("C0BOBONLY", "bob-only", members=frozenset({"U0BOB"})),
    ]
    for channel in added:
        bot.slack.add_channel(channel)
    try:
        for channel, graph in (("C0SECRET", "merger-graph"), ("C0BOBONLY", "bobs-graph"), ("C0ALERTS", "movies")):
            await bot.store.add_subscription(
                Subscription(id=0, channel=channel, graph_pattern=graph, team="T0STANDIN", created_by="U0BOB")
            )
        alice = await _home(bot, "U0ALICE")
        assert "`movies`" in alice
        for hidden in ("merger-graph", "C0SECRET", "secret-project", "bobs-graph", "C0BOBONLY"):
            assert hidden not in alice
        assert "*Subscriptions* (1)" in alice
        bob = await _home(bot, "U0BOB")
        assert "`merger-graph`" in bob
        assert "`bobs-graph`" in bob
        assert "`movies`" in bob
        # Slack not answering shows nothing rather than everything.
        bot.slack.fail("users.conversations", error="internal_error", count=5)
        unanswered = await _home(bot, "U0BOB")
        for graph in ("merger-graph", "bobs-graph", "movies"):
            assert graph not in unanswered
    finally:
        for channel in added:
            bot.slack.channels.pop(channel.id, None)
