"""Ops notices to group-bot sinks (``[ops] sinks``), end to end: GES emulator → a real runtime with
no Slack at all → the ops watch → the sink outbox → the DingTalk stand-in on loopback.

GES down past ``GES_BOT_BLIND_AFTER`` is told once as an open incident and, when GES is back, once
as its resolution (a follow-up naming it: a robot cannot edit or thread), in the sink's locale; a
restart afterwards tells nothing again. A broken sink's own incident is never sent to itself. Two replicas
checking side by side tell each change once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from ges_bot.notify.ops import OpsWatch
from ges_bot.sinks.common import WJ
from ges_bot.standin.webhooks import WebhookBot, WebhookStandIn, pings_everyone
from ges_bot.store import open_store
from ges_bot.store.api import TickResult
from ges_bot.store.incidents import IncidentStore
from tests.support.asgi import serve
from tests.support.emulator import EmulatorHandle
from tests.test_ops import ges_env, polled_ok, running
from tests.test_sink_delivery import rig

SECRET = "SECops0123"


@pytest.fixture
async def hooks() -> AsyncIterator[WebhookStandIn]:
    stand_in = WebhookStandIn()
    async with serve(stand_in.app) as url:
        stand_in.base_url = url
        yield stand_in


def env_for(emu: EmulatorHandle, database_url: str, config: Path) -> dict[str, str]:
    return {**ges_env(emu, database_url), "GES_BOT_CONFIG": str(config)}


def shown(body: dict[str, object]) -> str:
    return json.dumps(body, ensure_ascii=False).replace(WJ, "")


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


async def test_ges_down_reaches_a_dingtalk_sink_as_two_messages_once_without_slack(
    emu: EmulatorHandle, hooks: WebhookStandIn, tmp_path: Path
) -> None:
    robot = hooks.add(WebhookBot("dingtalk", token="ops-robot", secret=SECRET, keywords=("GES",)))
    config = tmp_path / "ges-bot.toml"
    config.write_text(
        f'[[sinks]]\nname = "ops-ding"\ntype = "dingtalk"\nurl = "{hooks.url_for(robot)}"\nsecret = "{SECRET}"\n'
        'locale = "zh-CN"\n\n[ops]\nsinks = ["ops-ding"]\n',
        encoding="utf-8",
    )
    env = env_for(emu, f"sqlite:///{tmp_path / 'bot.db'}", config)
    async with running(env) as bot:
        assert bot.ops is not None and bot.worker is None  # no Slack at all
        await polled_ok(bot)
        for _ in range(200):
            await bot.ops.wait_rounds(1)
            if not bot.ops.findings:
                break
        assert hooks.messages(robot) == []  # healthy: nothing to say

        await emu.fault(status=503, count=-1)
        await until(lambda: len(hooks.messages(robot)) >= 1)
        [opened] = hooks.messages(robot)
        assert "项目 prod 监控中断" in shown(opened) and "HTTP 503" in shown(opened)
        # What is wrong and how to fix it, in the sink's language too (GES's error as GES wrote it).
        assert "对 GES 的轮询持续失败" in shown(opened) and "请查看华为云该区域 GES 的服务健康状态" in shown(opened)
        assert not pings_everyone("dingtalk", opened)
        await bot.ops.wait_rounds(5)
        assert len(hooks.messages(robot)) == 1  # told once while it lasts

        await emu.clear_faults()
        await until(lambda: len(hooks.messages(robot)) >= 2)
        resolved = hooks.messages(robot)[1]
        text = shown(resolved)
        assert "已恢复：ges-bot：项目 prod 监控中断" in text and "后续通知" in text
        assert "GES 已恢复响应；已补查：没有遗漏" in text  # what the catch-up found
        await bot.ops.wait_rounds(5)
        assert len(hooks.messages(robot)) == 2

    # A restart finds every incident told: nothing is sent again.
    async with running(env) as again:
        assert again.ops is not None
        await polled_ok(again)
        await again.ops.wait_rounds(5)
        await asyncio.sleep(1.0)
        assert len(hooks.messages(robot)) == 2


async def test_a_broken_sink_is_not_told_of_its_own_incident(
    emu: EmulatorHandle, hooks: WebhookStandIn, tmp_path: Path
) -> None:
    good = hooks.add(WebhookBot("dingtalk", token="good", secret=SECRET))
    bad = hooks.add(WebhookBot("wecom", token="bad"))
    config = tmp_path / "ges-bot.toml"
    config.write_text(
        f'[[sinks]]\nname = "good"\ntype = "dingtalk"\nurl = "{hooks.url_for(good)}"\nsecret = "{SECRET}"\n\n'
        f'[[sinks]]\nname = "bad"\ntype = "wecom"\nurl = "{hooks.url_for(bad).replace("key=bad", "key=gone")}"\n\n'
        '[[subscriptions]]\nsink = "bad"\ngraph = "*"\n\n[ops]\nsinks = ["good", "bad"]\n',
        encoding="utf-8",
    )
    env = env_for(emu, f"sqlite:///{tmp_path / 'bot.db'}", config)
    async with running(env) as bot:
        assert bot.ops is not None and bot.store is not None
        await polled_ok(bot)
        await emu.add_job(
            job_id="f-1", status="failed", job_name="ImportGraph", related_graph="movies", fail_reason="boom"
        )
        await until(lambda: any("alerts cannot reach sink" in shown(m) for m in hooks.messages(good)))
        await bot.ops.wait_rounds(3)
        told = [m for m in hooks.messages(good) if "alerts cannot reach sink" in shown(m)]
        assert len(told) == 1 and "bad" in shown(told[0])
        # The broken sink's own row of that notice was never written: only its alert waits.
        backlog = await bot.store.sink_backlog()
        assert backlog["sink:bad"][0] == 1


async def test_an_incident_open_across_a_restart_is_told_once_and_resolved_once(
    emu: EmulatorHandle, hooks: WebhookStandIn, tmp_path: Path
) -> None:
    robot = hooks.add(WebhookBot("dingtalk", token="ops-robot", secret=SECRET, keywords=("GES",)))
    config = tmp_path / "ges-bot.toml"
    config.write_text(
        f'[[sinks]]\nname = "ops-ding"\ntype = "dingtalk"\nurl = "{hooks.url_for(robot)}"\nsecret = "{SECRET}"\n',
        encoding="utf-8",
    )
    env = env_for(emu, f"sqlite:///{tmp_path / 'bot.db'}", config) | {"GES_BOT_OPS_SINKS": "ops-ding"}
    wrong = env | {"HUAWEICLOUD_SDK_SK": "not-the-secret-key", "GES_BOT_BLIND_AFTER": "1h"}
    async with running(wrong):
        await until(lambda: len(hooks.messages(robot)) >= 1)
    [opened] = hooks.messages(robot)
    assert "project prod is blind" in shown(opened) and "refuses the bot's credentials" in shown(opened)
    assert "not-the-secret-key" not in shown(opened)
    async with running(wrong) as again:  # restarted, still refused: nothing new to tell
        assert again.ops is not None
        await again.ops.wait_rounds(5)
        await asyncio.sleep(0.5)
        assert len(hooks.messages(robot)) == 1
    async with running(env) as fixed:
        assert fixed.ops is not None
        await until(lambda: len(hooks.messages(robot)) >= 2)
        await fixed.ops.wait_rounds(5)
        await asyncio.sleep(0.5)
    [_, resolved] = hooks.messages(robot)
    assert "Resolved: ges-bot: project prod is blind" in shown(resolved)
    assert "GES answers again; caught up: nothing was missed." in shown(resolved)


async def test_two_replicas_tell_an_incident_to_the_sink_once_each_way(db_url: str) -> None:
    async with rig(db_url) as r:
        r.sink("ops-ding", "dingtalk", secret=SECRET, keywords=("GES",))
        other = await open_store(db_url)
        try:
            start = r.clock()
            watches = [
                OpsWatch(
                    store,
                    projects={"prod": "aksk"},
                    blind_after=timedelta(minutes=5),
                    clock=r.clock,
                    replica=name,
                    notes={},
                    check_every_s=30,
                    incidents=IncidentStore(store),
                    sinks=("ops-ding",),
                )
                for name, store in (("replica-a", r.store), ("replica-b", other))
            ]
            for minute in range(12):  # GES answers 503 for twelve minutes; both replicas check
                await r.store.record_poll_error("prod", start + timedelta(minutes=minute), "HTTP 503", kind="server")
                r.clock.now = start + timedelta(minutes=minute, seconds=30)
                await asyncio.gather(*(w.check_once() for w in watches))
            await r.store.commit_tick(
                TickResult(project="prod", at=r.clock(), snapshots=[], events=[], outcomes=[], deliveries=[])
            )
            for _ in range(3):
                r.clock.advance(30)
                await asyncio.gather(*(w.check_once() for w in watches))
            await asyncio.gather(r.drain(r.worker("replica-a")), r.drain(r.worker("replica-b")))
        finally:
            await other.close()
        told = r.hooks.messages(r.bots["ops-ding"])
        assert len(told) == 2
        assert "project prod is blind" in shown(told[0]) and "HTTP 503" in shown(told[0])
        assert "Resolved: ges-bot: project prod is blind" in shown(told[1])
