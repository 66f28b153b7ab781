"""The ops channel in Chinese (``GES_BOT_OPS_LOCALE=zh-CN``): a real runtime, GES answering 503 past
the blind threshold, then again — the incident message, its edit and the thread reply in Chinese."""

from __future__ import annotations

from pathlib import Path

from ges_bot.notify import limits
from ges_bot.standin.slack import SlackStandIn
from tests import test_ops
from tests.support.emulator import EmulatorHandle
from tests.test_ops import OPS, env_for, polled_ok, replies, running, shown, top_level

#: The stand-in with the ops channel, as in the English ops tests.
slack = test_ops.slack


async def test_a_blind_project_is_reported_in_chinese(emu: EmulatorHandle, slack: SlackStandIn, tmp_path: Path) -> None:
    env = env_for(emu, slack, f"sqlite:///{tmp_path / 'bot.db'}", GES_BOT_OPS_LOCALE="zh-CN")
    async with running(env) as bot:
        await polled_ok(bot, since=bot.clock())
        await emu.fault(status=503, count=-1)
        [posted] = await slack.wait_for(lambda: top_level(slack, OPS), timeout=20)
        text = shown(posted)
        assert "🚨 *ges-bot: 项目 `prod` 监控中断*" in text
        assert "*问题：* " in text and "HTTP 503" in text
        assert "*处理方法：* " in text
        # What is wrong and how to fix it, in Chinese too; GES's own error as GES wrote it.
        assert "对 GES 的轮询持续失败" in text and "请查看华为云该区域 GES 的服务健康状态" in text
        assert "*开始于：* <!date^" in text and "年" in text  # a date token, its fallback in Chinese
        assert limits.check_message(posted) == []

        await emu.clear_faults()
        [reply] = await slack.wait_for(lambda: replies(slack, OPS, posted["ts"]), timeout=20)
        assert shown(reply).startswith("✅ ")
        assert "后恢复：GES 已恢复响应；已补查：没有遗漏。" in shown(reply)
        [now_shown] = [m for m in slack.history(OPS) if m.get("ts") == posted["ts"]]
        assert "✅ *已解决 — ges-bot：项目 `prod` 监控中断*" in shown(now_shown)
        assert now_shown["text"].startswith("已解决：ges-bot blind prod（GES 已恢复响应")


def test_the_ops_language_comes_from_the_environment_or_the_config_file(tmp_path: Path) -> None:
    from ges_bot.config import load_config

    base = {"GES_ENDPOINT": "https://ges.example", "GES_PROJECT_ID": "p", "GES_TOKEN": "t"}
    assert load_config(base).ops_locale == "en"
    assert load_config({**base, "GES_BOT_OPS_LOCALE": "zh-CN"}).ops_locale == "zh-CN"
    config_file = tmp_path / "ges-bot.toml"
    config_file.write_text('[ops]\nchannel = "#ops"\nlocale = "zh-CN"\n', encoding="utf-8")
    assert load_config({**base, "GES_BOT_CONFIG": str(config_file)}).ops_locale == "zh-CN"
