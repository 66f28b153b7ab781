"""``ges-bot check`` for sinks (shape and secret; one test message each with ``--send-test``, never
echoing a URL or secret) and ``ges-bot demo --sink`` showing a group bot's card in the terminal."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ges_bot.check import Report, check_slack
from ges_bot.config import load_config
from ges_bot.sinks.preflight import check_sinks
from ges_bot.standin.webhooks import WebhookBot, WebhookStandIn
from tests.support.asgi import serve

PROJECT = '[[projects]]\nalias = "prod"\nproject_id = "p1"\nendpoint = "https://ges.test"\ntoken = "t"\n'


async def test_check_verifies_each_sink_and_sends_a_test_only_when_asked(tmp_path: Path) -> None:
    now = time.time()
    hooks = WebhookStandIn(clock=lambda: now)
    lark = hooks.add(WebhookBot("lark", token="lark-TOKEN", secret="lark-SECRET"))
    ding = hooks.add(WebhookBot("dingtalk", token="ding-TOKEN", secret="SECright"))
    wecom = hooks.add(WebhookBot("wecom", token="wecom-TOKEN"))
    async with serve(hooks.app) as url, httpx.AsyncClient(timeout=5) as client:
        hooks.base_url = url
        file = tmp_path / "bot.toml"
        file.write_text(
            PROJECT
            + f'[[sinks]]\nname = "dba"\ntype = "lark"\nurl = "{hooks.url_for(lark)}"\nsecret = "lark-SECRET"\nlocale = "zh-CN"\n'
            + f'[[sinks]]\nname = "ops"\ntype = "dingtalk"\nurl = "{hooks.url_for(ding)}"\nsecret = "SECwrong"\n'
            + f'[[sinks]]\nname = "wc"\ntype = "wecom"\nurl = "{hooks.url_for(wecom)}"\n'
            + '[[subscriptions]]\nsink = "dba"\ngraph = "*"\n'
            + '[[digests]]\nsink = "ops"\nschedule = "daily 09:00"\n'
            + '[ops]\nsinks = ["ops"]\n',
            encoding="utf-8",
        )
        config = load_config({"GES_BOT_CONFIG": str(file)})
        # Without Slack, a bot with sinks is complete: check says so rather than failing.
        slack_report = Report()
        await check_slack(config, slack_report, [])
        assert [f.ok for f in slack_report.findings] == [True]

        report = Report()
        await check_sinks(config, report, client=client, clock=lambda: now)
        assert hooks.attempts == []  # posts nothing
        summaries = {f.summary.split(":")[0]: f for f in report.findings}
        assert summaries["sink 'dba' (lark, zh-CN)"].ok
        assert "signed, 1 subscription(s)" in summaries["sink 'dba' (lark, zh-CN)"].summary
        assert "no [[subscriptions]] names this sink" in (summaries["sink 'wc' (wecom, en)"].fix or "")
        # A sink that hears only digests and ops notices is used: nothing to fix there.
        assert "0 subscription(s), 1 digest(s), ops notices" in summaries["sink 'ops' (dingtalk, en)"].summary
        assert summaries["sink 'ops' (dingtalk, en)"].fix is None

        report = Report()
        await check_sinks(config, report, send_test=True, client=client, clock=lambda: now)
        tests = [f for f in report.findings if "test message" in f.summary]
        assert [(f.summary.split(":")[0], f.ok) for f in tests] == [
            ("sink 'dba'", True),
            ("sink 'ops'", False),
            ("sink 'wc'", True),
        ]
        assert "signature refused" in tests[1].summary
        [test_card] = hooks.messages(lark)
        assert "测试消息" in test_card["card"]["header"]["title"]["content"]
        shown = " ".join(f"{f.summary} {f.fix}" for f in report.findings)
        for secret in ("TOKEN", "SECRET", "SECwrong", url):
            assert secret not in shown


def test_demo_with_a_sink_shows_the_card_as_the_chat_would() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GES_", "HUAWEICLOUD_", "SLACK_"))}
    env["COLUMNS"] = "120"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ges_bot",
            "demo",
            "--no-input",
            "--duration",
            "12",
            "--sink",
            "lark",
            "--locale",
            "zh-CN",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "lark: demo-group" in out
    assert "导入图失败" in out or "导入图部分失败" in out
    assert "图名称" in out
    assert "message(s) posted to the lark stand-in" in out
    assert "Traceback" not in proc.stderr


async def test_healthz_names_a_broken_sink_by_name_and_never_its_url_or_secret(tmp_path: Path) -> None:
    import asyncio

    from ges_bot.domain import Delivery, EventKind, Job, JobEvent
    from ges_bot.runtime import Runtime, RuntimeOptions
    from ges_bot.standin.slack import DEFAULT_BOT_TOKEN, SlackStandIn

    hooks = WebhookStandIn()
    ding = hooks.add(WebhookBot("dingtalk", token="ding-TOKEN", secret="SECright"))
    slack = SlackStandIn()
    async with serve(hooks.app) as hooks_url, serve(slack.app) as slack_url:
        hooks.base_url = hooks_url
        slack.base_url = slack_url
        file = tmp_path / "bot.toml"
        file.write_text(
            # GES is never reached in this test (the first poll is an hour away).
            '[[projects]]\nalias = "prod"\nproject_id = "p1"\nendpoint = "http://127.0.0.1:9"\ntoken = "t"\n'
            '[[sinks]]\nname = "ops"\ntype = "dingtalk"\nurl_env = "OPS_URL"\nsecret_env = "OPS_SECRET"\n'
            '[[subscriptions]]\nsink = "ops"\ngraph = "*"\n',
            encoding="utf-8",
        )
        env = {
            "GES_BOT_CONFIG": str(file),
            "OPS_URL": hooks.url_for(ding),
            "OPS_SECRET": "SECwrong-SECRET",
            "GES_BOT_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
            "GES_BOT_POLL_INTERVAL": "3600",
            "GES_BOT_HTTP_HOST": "127.0.0.1",
            "GES_BOT_HTTP_PORT": "0",
            "SLACK_BOT_TOKEN": DEFAULT_BOT_TOKEN,
            "SLACK_SIGNING_SECRET": "s" * 32,
            "SLACK_API_URL": f"{slack_url}/api/",
        }
        runtime = Runtime(load_config(env), options=RuntimeOptions(poll_jitter_s=0))
        await runtime.start()
        try:
            assert runtime.store is not None and runtime.sink_worker is not None
            job = Job(job_id="j-1", status="failed", job_name="ImportGraph", graph="g")
            event = JobEvent(project="prod", kind=EventKind.FAILED, job=job, at=runtime.clock())
            await runtime.store.enqueue(
                [Delivery(channel="sink:ops", project="prod", graph="g", events=(event,))], runtime.clock()
            )
            runtime.sink_worker.wake()
            async with httpx.AsyncClient(timeout=5) as http:
                deadline = time.monotonic() + 15
                while True:
                    answer = await http.get(f"http://127.0.0.1:{runtime.http_port}/healthz")
                    sinks = answer.json()["sinks"]
                    if sinks[0]["broken"] or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.05)
            assert answer.json()["status"] == "degraded"
            assert sinks == [{"name": "ops", "type": "dingtalk", "broken": sinks[0]["broken"], "waiting": 1}]
            assert "signature refused" in sinks[0]["broken"]
            for secret in ("ding-TOKEN", "SECwrong", hooks_url):
                assert secret not in answer.text
        finally:
            await runtime.stop()


async def test_without_slack_a_bot_with_sinks_starts_and_delivers_to_them(tmp_path: Path) -> None:
    import asyncio

    from ges_bot.domain import Delivery, EventKind, Job, JobEvent
    from ges_bot.errors import ConfigError
    from ges_bot.runtime import Runtime, RuntimeOptions

    hooks = WebhookStandIn()
    wecom = hooks.add(WebhookBot("wecom", token="wc-TOKEN"))
    async with serve(hooks.app) as hooks_url:
        hooks.base_url = hooks_url
        project = '[[projects]]\nalias = "prod"\nproject_id = "p1"\nendpoint = "http://127.0.0.1:9"\ntoken = "t"\n'
        base = {
            "GES_BOT_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
            "GES_BOT_POLL_INTERVAL": "3600",
            "GES_BOT_HTTP_HOST": "127.0.0.1",
            "GES_BOT_HTTP_PORT": "0",
            "WC_URL": hooks.url_for(wecom),
        }
        bare = tmp_path / "bare.toml"
        bare.write_text(project, encoding="utf-8")
        refused = Runtime(load_config({**base, "GES_BOT_CONFIG": str(bare)}))
        with pytest.raises(ConfigError, match=r"SLACK_BOT_TOKEN is not set.*\[\[sinks\]\]"):
            await refused.start()

        file = tmp_path / "bot.toml"
        file.write_text(
            project
            + '[[sinks]]\nname = "wc"\ntype = "wecom"\nurl_env = "WC_URL"\n[[subscriptions]]\nsink = "wc"\ngraph = "*"\n',
            encoding="utf-8",
        )
        runtime = Runtime(load_config({**base, "GES_BOT_CONFIG": str(file)}), options=RuntimeOptions(poll_jitter_s=0))
        await runtime.start()
        try:
            assert runtime.worker is None and runtime.store is not None and runtime.sink_worker is not None
            job = Job(job_id="j-1", status="failed", job_name="ImportGraph", graph="g")
            event = JobEvent(project="prod", kind=EventKind.FAILED, job=job, at=runtime.clock())
            await runtime.store.enqueue(
                [Delivery(channel="sink:wc", project="prod", graph="g", events=(event,))], runtime.clock()
            )
            runtime.sink_worker.wake()
            deadline = time.monotonic() + 15
            while not hooks.messages(wecom) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            [body] = hooks.messages(wecom)
            assert "ImportGraph failed" in body["markdown"]["content"]
            health = await runtime.health()
            assert health["sinks"] == [{"name": "wc", "type": "wecom", "broken": None, "waiting": 0}]
        finally:
            await runtime.stop()


def test_a_broken_sink_is_an_ops_incident_named_by_the_sink() -> None:
    from datetime import UTC, datetime, timedelta

    from ges_bot.notify.ops import render_open
    from ges_bot.store.incidents import IncidentRecord
    from ges_bot.watch.blindness import IncidentKind, Observation, assess

    now = datetime(2026, 3, 1, tzinfo=UTC)
    obs = Observation(
        now=now,
        started_at=now,
        blind_after=timedelta(minutes=5),
        projects={},
        polls=(),
        broken_channels={},
        broken_sinks={"dba-dingtalk": "310000: signature refused: check the secret (加签) and this machine's clock"},
    )
    [finding] = assess(obs, {})
    assert (finding.kind, finding.subject) == (IncidentKind.SINK, "dba-dingtalk")
    assert "signature refused" in finding.cause and "nothing is lost" in finding.cause
    message = render_open(IncidentRecord(finding.kind.value, finding.subject, "open", now, finding.cause, finding.fix))
    assert "alerts cannot reach sink `dba-dingtalk`" in message.blocks[0]["text"]["text"]
