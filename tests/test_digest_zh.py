"""A digest in Chinese: ``/gesjobs digest daily 09:00 lang zh-CN`` (stored with the schedule) makes
the 09:00 digest speak Chinese — header, what needs attention, totals, flaky graphs, the footer and
the fallback — through the real runner, store and Slack stand-in on loopback.

Golden: ``tests/fixtures/render/zh_CN_digest.json`` (the image block's uploaded file id left out).
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any

from ges_bot.notify import limits
from ges_bot.schedule import DigestSchedule
from ges_bot.slackapp.commands import Digest, parse
from ges_bot.standin.slack import SlackStandIn
from ges_bot.store import open_store
from tests import test_digests
from tests.test_digests import CHANNEL, NINE, SHANGHAI, Clock, readable, runner, seed
from tests.test_render import assert_golden

#: The Slack stand-in fixture of the English digest tests.
slack = test_digests.slack


def without_file_ids(message: dict[str, Any]) -> dict[str, Any]:
    blocks = [b for b in message["blocks"] if b["type"] != "image"]
    return {"text": message["text"], "blocks": blocks}


async def test_a_chinese_digest(sqlite_url: str, slack: SlackStandIn) -> None:
    command = parse("digest daily 09:00 lang zh-CN")
    assert isinstance(command, Digest)
    store = await open_store(sqlite_url, migrate=True)
    try:
        await seed(store, set_at=NINE - timedelta(days=2))
        # What the app stores for that command (the asker's zone: Shanghai).
        await store.set_digest_schedule(
            DigestSchedule(CHANNEL, command.at, SHANGHAI, created_at=NINE - timedelta(days=2), locale=command.locale)
        )
        [stored] = await store.digest_schedules(CHANNEL)
        assert stored.locale == "zh-CN"
        clock = Clock(NINE + timedelta(minutes=1))
        report = await runner(store, slack, clock, "w").run()
        assert report.sent >= 1
        [digest] = [m for m in slack.messages(CHANNEL) if "摘要" in str(m.get("text"))][-1:]
        assert limits.check_message(digest) == []
        seen = readable(digest)
        assert digest["blocks"][0]["text"]["text"] == "每日摘要 · 11月30日周一 09:00（Asia/Shanghai）"
        assert "*需要关注*" in seen
        assert "导入图 失败" in seen
        assert "导入图 部分失败" in seen
        assert "*4 个任务*" in seen
        assert "摘要 daily 09:00 · `/gesjobs digest off` 可停止" in seen
        assert_golden("zh_CN_digest", without_file_ids(digest))
    finally:
        await store.close()


def test_an_english_digest_schedule_stays_english() -> None:
    assert DigestSchedule(CHANNEL, time(9, 0), SHANGHAI).locale == "en"
