"""Digests to group-bot sinks, end to end: ``[[digests]] sink = …`` → the digest outbox (once per
sink and period) → built from the store, filtered by the sink's subscriptions → drawn for the
platform → posted through the sink worker (signing, pacing, answers) → the webhook stand-in on
loopback. Two replicas and a restart agree on one digest; a rate limit or a broken sink delays it
and loses nothing; config errors say what to fix.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from ges_bot.config import SinkSettings, load_config
from ges_bot.digests import DigestRunner
from ges_bot.domain import Subscription
from ges_bot.errors import ConfigError
from ges_bot.schedule import DigestSchedule
from ges_bot.sinks.common import WJ
from ges_bot.sinks.worker import SinkWorker
from ges_bot.standin.webhooks import Platform, WebhookBot, WebhookStandIn, pings_everyone
from ges_bot.store import SqlStore
from ges_bot.store.api import DigestState
from tests.support.asgi import serve
from tests.support.emulator import EmulatorHandle
from tests.test_digests import NINE, SHANGHAI, remember_night
from tests.test_ops import running
from tests.test_sink_delivery import SECRETS, Rig, rig


async def seed(store: SqlStore) -> None:
    """The Slack digest tests' night of imports, the test-graph job's failure an event too."""
    await remember_night(store, other_failed=True)


def schedule(sink: SinkSettings) -> DigestSchedule:
    return DigestSchedule(channel=sink.target, at=time(9, 0), tz=SHANGHAI, source="config")


def runner(r: Rig, sink: SinkSettings, worker: SinkWorker, name: str) -> DigestRunner:
    return DigestRunner(
        r.store,
        None,
        config_schedules=[schedule(sink)],
        config_subscriptions=[Subscription(id=-1, channel=sink.target, graph_pattern="prod-*", source="config")],
        worker=name,
        clock=r.clock,
        sinks=r.sinks,
        sink_worker=worker,
    )


def shown(body: dict[str, object]) -> str:
    return json.dumps(body, ensure_ascii=False).replace(WJ, "")


def digests(r: Rig, name: str) -> list[dict[str, object]]:
    return [m for m in r.hooks.messages(r.bots[name]) if m.get("msgtype") != "image"]


@pytest.mark.parametrize("platform", ["lark", "dingtalk", "wecom", "teams", "slack"])
async def test_two_replicas_send_a_sinks_digest_once(db_url: str, platform: Platform) -> None:
    async with rig(db_url) as r:
        sink = r.sink(
            "grp", platform, secret=SECRETS.get(platform), keywords=("GES",) if platform in ("lark", "dingtalk") else ()
        )
        await seed(r.store)
        r.clock.now = NINE + timedelta(seconds=30)
        replicas = [runner(r, sink, r.worker("a"), "a"), runner(r, sink, r.worker("b"), "b")]
        reports = await asyncio.gather(*(x.run() for x in replicas))
        assert sum(x.sent for x in reports) == 1 and sum(x.enqueued for x in reports) == 1
        r.clock.advance(300)
        again = await asyncio.gather(*(x.run() for x in replicas))
        assert sum(x.sent + x.enqueued for x in again) == 0
        [digest] = digests(r, "grp")
        text = shown(digest)
        assert "Daily digest" in text and "Late" not in text
        assert "prod-fraud" in text and "test-graph" not in text  # the sink's subscriptions filter it
        assert "Needs attention" in text
        assert not pings_everyone(platform, digest)
        [row] = await r.store.digests(sink.target)
        assert (row.state, row.period) == (DigestState.SENT, "daily 2026-11-30T09:00+08:00")
        pictures = [m for m in r.hooks.messages(r.bots["grp"]) if m.get("msgtype") == "image"]
        assert len(pictures) == (1 if platform == "wecom" else 0)  # WeCom alone takes a picture


async def test_a_bot_down_at_nine_sends_the_sinks_digest_once_when_back_saying_it_is_late(db_url: str) -> None:
    async with rig(db_url) as r:
        sink = r.sink("grp", "dingtalk", secret=SECRETS["dingtalk"])
        await seed(r.store)
        r.clock.now = NINE + timedelta(hours=1, minutes=30)
        back = runner(r, sink, r.worker("new"), "new")
        assert (await back.run()).sent == 1
        [late] = digests(r, "grp")
        assert "Late: this digest was due" in shown(late) and "the bot was not running then" in shown(late)
        r.clock.advance(7200)
        assert (await back.run()).sent == 0
        assert len(digests(r, "grp")) == 1


async def test_a_zh_cn_sink_gets_its_digest_in_chinese(db_url: str) -> None:
    async with rig(db_url) as r:
        sink = r.sink("grp", "wecom")
        r.sinks[-1] = SinkSettings(name=sink.name, type=sink.type, url=sink.url, locale="zh-CN")
        await seed(r.store)
        r.clock.now = NINE + timedelta(minutes=1)
        assert (await runner(r, r.sinks[-1], r.worker(), "w").run()).sent == 1
        [digest] = digests(r, "grp")
        assert "每日摘要" in shown(digest) and "需要关注" in shown(digest) and "导入图失败" in shown(digest)


async def test_a_rate_limited_sink_gets_the_digest_later_and_once(db_url: str) -> None:
    async with rig(db_url) as r:
        sink = r.sink("grp", "teams", throttle_count=1, throttle_retry_after=30)
        await seed(r.store)
        r.clock.now = NINE + timedelta(minutes=1)
        digest_runner = runner(r, sink, r.worker(), "w")
        first = await digest_runner.run()
        assert (first.sent, first.failed) == (0, 1)
        [row] = await r.store.digests(sink.target)
        assert row.state == DigestState.PENDING and "rate_limited" in (row.last_error or "")
        r.clock.advance(10)
        assert (await digest_runner.run()).sent == 0  # still inside the platform's window
        r.clock.advance(60)
        assert (await digest_runner.run()).sent == 1
        assert len(digests(r, "grp")) == 1


async def test_a_broken_sink_holds_its_digest_until_fixed(db_url: str) -> None:
    async with rig(db_url) as r:
        sink = r.sink("grp", "dingtalk", secret=SECRETS["dingtalk"], keywords=("nope",))
        await seed(r.store)
        r.clock.now = NINE + timedelta(minutes=1)
        worker = r.worker()
        digest_runner = runner(r, sink, worker, "w")
        assert (await digest_runner.run()).sent == 0
        assert "keyword" in worker.broken()["grp"]
        [row] = await r.store.digests(sink.target)
        assert row.state == DigestState.PENDING
        r.bots["grp"].keywords = ("GES",)  # a group member fixes the robot
        r.clock.advance(700)
        assert (await digest_runner.run()).sent == 1
        assert worker.broken() == {}
        assert len(digests(r, "grp")) == 1


# --- configuration ------------------------------------------------------------------------------

SINK = '[[sinks]]\nname = "dba"\ntype = "dingtalk"\nurl = "https://oapi.dingtalk.com/robot/send?access_token=t"\n'


def config_with(tmp_path: Path, text: str, **env: str):  # type: ignore[no-untyped-def]
    file = tmp_path / "ges-bot.toml"
    file.write_text(SINK + text, encoding="utf-8")
    return load_config({"GES_BOT_CONFIG": str(file), **env}, require_ges=False)


def test_a_digest_may_name_a_sink(tmp_path: Path) -> None:
    config = config_with(tmp_path, '[[digests]]\nsink = "dba"\nschedule = "daily 09:00"\ntz = "Asia/Shanghai"\n')
    [digest] = config.digests
    assert (digest.channel, digest.text, digest.tz) == ("sink:dba", "daily 09:00", SHANGHAI)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('channel = "C1"\nsink = "dba"\n', r"\[\[digests\]\] #1: name either a Slack channel .* exactly one of them"),
        ("", r"\[\[digests\]\] #1: name either a Slack channel"),
        ('sink = "nosuch"\n', r"\[\[digests\]\] #1: sink 'nosuch' is not a configured \[\[sinks\]\] name \(dba\)"),
    ],
)
def test_a_digest_naming_both_neither_or_an_unknown_sink_is_refused(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_with(tmp_path, f'[[digests]]\n{table}schedule = "daily 09:00"\n')


def test_ops_sinks_from_the_file_or_the_environment(tmp_path: Path) -> None:
    assert config_with(tmp_path, '[ops]\nsinks = ["dba"]\n').ops_sinks == ("dba",)
    assert config_with(tmp_path, "", GES_BOT_OPS_SINKS=" dba , dba").ops_sinks == ("dba",)
    with pytest.raises(ConfigError, match=r"\[ops\] sinks: 'teams' is not a configured \[\[sinks\]\] name \(dba\)"):
        config_with(tmp_path, '[ops]\nsinks = ["teams"]\n')
    with pytest.raises(ConfigError, match=r"GES_BOT_OPS_SINKS: 'x' is not a configured"):
        config_with(tmp_path, "", GES_BOT_OPS_SINKS="dba,x")
    with pytest.raises(ConfigError, match="GES_BOT_OPS_SINKS: an empty sink name"):
        config_with(tmp_path, "", GES_BOT_OPS_SINKS="dba,,")


async def test_ges_bot_digest_now_for_a_sink_from_the_command_line(tmp_path: Path) -> None:
    hooks = WebhookStandIn()
    async with serve(hooks.app) as url:
        hooks.base_url = url
        robot = hooks.add(WebhookBot("lark", token="cli", secret="lark-s3cret", keywords=("GES",)))
        config = tmp_path / "ges-bot.toml"
        config.write_text(
            f'[[sinks]]\nname = "grp"\ntype = "lark"\nurl = "{hooks.url_for(robot)}"\nsecret = "lark-s3cret"\n'
            'locale = "zh-CN"\n',
            encoding="utf-8",
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GES_", "HUAWEICLOUD_", "SLACK_"))} | {
            "GES_BOT_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
            "GES_BOT_CONFIG": str(config),
            "GES_BOT_TIMEZONE": SHANGHAI,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ges_bot",
            "digest",
            "--now",
            "--channel",
            "sink:grp",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert "digests: 1 sent, 0 quiet (nothing ran), 0 failed" in out.decode()
        [card] = hooks.messages(robot)
        assert "每日摘要" in shown(card) and "本周期内没有任务运行。" in shown(card)
        assert "lark-s3cret" not in out.decode() + err.decode() and url not in err.decode()


async def test_a_bot_without_slack_sends_a_sinks_digest_when_due(emu: EmulatorHandle, tmp_path: Path) -> None:
    hooks = WebhookStandIn()
    async with serve(hooks.app) as url:
        hooks.base_url = url
        robot = hooks.add(WebhookBot("teams", token="digest"))
        due = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%H:%M")
        config = tmp_path / "ges-bot.toml"
        config.write_text(
            f'[[sinks]]\nname = "team"\ntype = "teams"\nurl = "{hooks.url_for(robot)}"\n\n'
            f'[[digests]]\nsink = "team"\nschedule = "daily {due} always"\ntz = "UTC"\n',
            encoding="utf-8",
        )
        env = {
            "GES_ENDPOINT": emu.url,
            "GES_PROJECT_ID": emu.project_id,
            "GES_PROJECT_ALIAS": "prod",
            "HUAWEICLOUD_SDK_AK": emu.ak,
            "HUAWEICLOUD_SDK_SK": emu.sk,
            "GES_BOT_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
            "GES_BOT_POLL_INTERVAL": "0.5",
            "GES_BOT_CONFIG": str(config),
        }
        async with running(env) as bot:
            assert bot.worker is None and bot.digests is not None  # no Slack at all
            for _ in range(200):
                if hooks.messages(robot):
                    break
                await asyncio.sleep(0.05)
            [card] = hooks.messages(robot)
            assert "Daily digest" in shown(card) and "(UTC)" in shown(card)
            await bot.digests.run()  # a later check sends nothing again
            assert len(hooks.messages(robot)) == 1
