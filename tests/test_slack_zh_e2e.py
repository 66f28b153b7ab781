"""Chinese for Slack, end to end: ``/gesjobs subscribe movies lang zh-CN`` through the real bolt app
(signed HTTP on loopback), then GES emulator → poller → outbox → delivery worker → Slack stand-in.
Assertions are about what people in the channel see."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette

from ges_bot.config import Config, load_settings
from ges_bot.notify import limits, render
from ges_bot.services import Services
from ges_bot.slackapp.app import SlackAppOptions, build_app, build_http_routes
from ges_bot.standin.slack import DEFAULT_BOT_TOKEN, signed_command_request, signed_interaction_request
from tests.support.asgi import serve
from tests.support.world import World, world

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@dataclass(frozen=True)
class Slash:
    """``ask("subscribe …", channel)``: a signed ``/gesjobs`` and its answer; ``click(payload)``: a
    signed button press."""

    ask: Callable[..., Awaitable[dict[str, Any]]]
    click: Callable[[dict[str, Any]], Awaitable[None]]


@contextlib.asynccontextmanager
async def slash(w: World) -> AsyncIterator[Slash]:
    """The bolt app on the world's store and Slack stand-in."""
    config = Config(settings=load_settings({}), projects=(w.project,), subscriptions=())
    services = Services(config=config, store=w.store, clients={w.project.alias: w.client}, clock=w.now)
    app = build_app(
        services,
        bot_token=DEFAULT_BOT_TOKEN,
        signing_secret=SECRET,
        api_url=w.slack.api_url,
        socket_mode=False,
        options=SlackAppOptions(live_timeout_s=5.0),
    )
    async with serve(Starlette(routes=build_http_routes(app))) as url, httpx.AsyncClient(timeout=10) as http:

        async def ask(text: str, channel: str = "C0ALERTS") -> dict[str, Any]:
            rid = f"r{time.monotonic_ns()}"
            body, headers = signed_command_request(
                SECRET, text=text, channel_id=channel, response_url=w.slack.response_url(rid)
            )
            response = await http.post(f"{url}/slack/events", content=body, headers=headers)
            assert response.status_code == 200, response.text
            [answer] = await w.slack.wait_for(lambda: w.slack.responses(rid), 10)
            return dict(answer)

        async def click(payload: dict[str, Any]) -> None:
            body, headers = signed_interaction_request(SECRET, payload)
            response = await http.post(f"{url}/slack/events", content=body, headers=headers)
            assert response.status_code == 200, response.text

        yield Slash(ask, click)


def seen(message: dict[str, Any]) -> str:
    return json.dumps({k: message.get(k) for k in ("text", "blocks")}, ensure_ascii=False)


async def test_a_chinese_subscription_gets_chinese_alerts_and_recoveries(db_url: str) -> None:
    async with world(db_url) as w, slash(w) as app:
        ask = app.ask
        answer = await ask("subscribe movies failed partial recovered lang zh-CN")
        assert "in Chinese (`zh-CN`)" in seen(answer)
        listed = await ask("subscriptions")
        assert "🌐 in Chinese (`zh-CN`)" in seen(listed)
        refused = await ask("subscribe movies lang fr")
        assert "unknown language `fr`; choose `en` or `zh-CN`" in seen(refused)
        await ask("subscribe movies", channel="C0TEAM")  # English, the default

        await w.job("j-1", "failed", fail_reason="OBS 路径不存在")
        await w.settle()
        [alert] = w.messages("C0ALERTS")
        assert alert["blocks"][0]["text"]["text"] == "🔴 导入图失败 · movies"
        assert alert["text"] == "🔴 图 movies 的导入图失败（任务 j-1）：OBS 路径不存在"
        assert "*失败原因*" in seen(alert)
        assert [e["text"]["text"] for e in alert["blocks"][-1]["elements"]] == [
            "详情",
            "静音 1 小时",
            "静音 24 小时",
            "确认",
        ]
        # The other channel's subscription is English: its message is the one it always was.
        [english] = w.messages("C0TEAM")
        assert english["blocks"][0]["text"]["text"] == "🔴 ImportGraph failed · movies"
        assert english["text"] == "🔴 ImportGraph failed on graph movies (job j-1): OBS 路径不存在"

        await w.advance(600)
        await w.job("j-2")
        await w.settle()
        await w.advance(60)
        await w.finish("j-2", "success")
        await w.settle()
        _, reply = w.messages("C0ALERTS")
        assert reply["thread_ts"] == alert["ts"]
        assert reply["text"] == "✅ 图 movies 的导入图已恢复（任务 j-2）"
        assert "任务 `j-1` 失败后，任务 `j-2` 成功" in seen(reply)
        [original] = [m for m in w.slack.history("C0ALERTS") if m["ts"] == alert["ts"]]
        assert original["text"].startswith("✅ 已恢复：🔴 图 movies 的导入图失败")
        assert original["blocks"][1]["text"]["text"].startswith("✅ *已恢复*：导入图任务 `j-2` 于 <!date^")
        for payload in w.payloads():
            assert limits.check_message(payload) == [], payload


async def test_acknowledging_a_chinese_alert_says_so_in_chinese(db_url: str) -> None:
    async with world(db_url) as w, slash(w) as app:
        ask = app.ask
        await ask("subscribe movies lang zh-CN")
        await w.job("j-1", "failed", fail_reason="OBS 路径不存在")
        await w.settle()
        [alert] = w.messages("C0ALERTS")
        payload = w.slack.block_action_payload(
            render.ACTION_ACK,
            render.job_ref("prod", "j-1"),
            channel_id="C0ALERTS",
            message_ts=alert["ts"],
            user_id="U0BOB",
        )
        payload["message"].update({"text": alert["text"], "blocks": alert["blocks"]})
        await app.click(payload)
        [update] = await w.slack.wait_for(lambda: w.slack.updates("C0ALERTS"), 10)
        assert update["text"].startswith("👀 已确认：🔴 图 movies 的导入图失败")
        assert "👀 <@U0BOB> 已于 <!date^" in seen(update)
        assert [e["text"]["text"] for b in update["blocks"] if b["type"] == "actions" for e in b["elements"]] == [
            "详情",
            "静音 1 小时",
            "静音 24 小时",
        ]
