"""Sink delivery end to end: a routed failure → the outbox → the sink worker → the platform's
stand-in (signed, paced, classified), for each platform; bursts paced with nothing lost; each
documented error answer classified once."""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from ges_bot.check import Report
from ges_bot.config import Config, Settings, SinkSettings
from ges_bot.domain import Delivery, EventKind, Job, JobEvent, ProjectInfo, Subscription
from ges_bot.notify.routing import route
from ges_bot.sinks.preflight import check_sinks
from ges_bot.sinks.sender import Outcome, SinkSender, classify
from ges_bot.sinks.worker import SinkPolicy, SinkWorker
from ges_bot.standin.webhooks import Platform, WebhookBot, WebhookStandIn, pings_everyone
from ges_bot.store import SqlStore, open_store
from ges_bot.store.api import OutboxState
from tests.support.asgi import serve

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
PROJECT = ProjectInfo(alias="prod", project_id="0123456789abcdef0123456789abcdef", region="cn-north-4")
SECRETS: dict[Platform, str | None] = {"lark": "lark-s3cret", "dingtalk": "SECding0123", "wecom": None, "teams": None}


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def seconds(self) -> float:
        return self.now.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Rig:
    store: SqlStore
    hooks: WebhookStandIn
    clock: Clock
    client: httpx.AsyncClient
    bots: dict[str, WebhookBot] = field(default_factory=dict)
    sinks: list[SinkSettings] = field(default_factory=list)

    def sink(self, name: str, platform: Platform, *, secret: str | None = None, **bot: Any) -> SinkSettings:
        made = self.hooks.add(WebhookBot(platform, token=f"tok-{name}", secret=secret, **bot))
        self.bots[name] = made
        settings = SinkSettings(
            name=name,
            type=platform,
            url=SecretStr(self.hooks.url_for(made)),
            secret=SecretStr(secret) if secret else None,
        )
        self.sinks.append(settings)
        return settings

    def worker(self, worker_id: str = "w1") -> SinkWorker:
        return SinkWorker(
            self.store,
            self.sinks,
            {"prod": PROJECT},
            SinkSender(self.client, clock=self.clock.seconds),
            worker_id=worker_id,
            clock=self.clock,
            policy=SinkPolicy(),
            rng=random.Random(7),
        )

    async def drain(self, worker: SinkWorker, *, step_s: float = 5.0, limit_s: float = 3600.0) -> None:
        """Deliver every due row, moving the clock on until nothing is pending (or ``limit_s``)."""
        waited = 0.0
        while waited <= limit_s:
            await worker.deliver_due()
            if not await self.pending():
                return
            self.clock.advance(step_s)
            waited += step_s

    async def pending(self) -> int:
        """Rows waiting for any sink or Slack channel."""
        slack = (await self.store.health(self.clock())).outbox_pending
        return slack + sum(n for n, _ in (await self.store.sink_backlog()).values())


@contextlib.asynccontextmanager
async def rig(db_url: str) -> AsyncIterator[Rig]:
    clock = Clock()
    hooks = WebhookStandIn(clock=clock.seconds)
    async with serve(hooks.app) as url, httpx.AsyncClient(timeout=5.0) as client:
        hooks.base_url = url
        store = await open_store(db_url)
        try:
            yield Rig(store=store, hooks=hooks, clock=clock, client=client)
        finally:
            await store.close()


def failure(job_id: str = "j-1", *, graph: str = "prod-movies", reason: str = "2 of 4 files failed") -> JobEvent:
    job = Job(
        job_id=job_id,
        status="failed",
        job_type="GraphManagement",
        job_name="ImportGraph",
        graph=graph,
        begin_time=T0 - timedelta(hours=1),
        end_time=T0,
        fail_reason=reason,
    )
    return JobEvent(project="prod", kind=EventKind.FAILED, job=job, at=T0)


def subscription(target: str, sub_id: int = -1) -> Subscription:
    return Subscription(id=sub_id, channel=target, graph_pattern="prod-*", source="config")


async def enqueue_routed(r: Rig, events: list[JobEvent], subs: list[Subscription]) -> list[Delivery]:
    deliveries = list(route(events, subs, [], r.clock()).deliveries)
    await r.store.enqueue(deliveries, r.clock())
    return deliveries


@pytest.mark.parametrize("platform", ["lark", "dingtalk", "wecom", "teams"])
async def test_a_routed_failure_reaches_each_platform_signed_once(db_url: str, platform: Platform) -> None:
    async with rig(db_url) as r:
        sink = r.sink("grp", platform, secret=SECRETS[platform], keywords=("GES",) if platform != "teams" else ())
        await enqueue_routed(r, [failure()], [subscription(sink.target)])
        worker = r.worker()
        assert await worker.deliver_due() == 1
        [body] = r.hooks.messages(r.bots["grp"])
        assert "ImportGraph failed" in json.dumps(body, ensure_ascii=False)
        assert not pings_everyone(platform, body)
        assert await r.pending() == 0
        # Nothing is due any more: nothing is posted twice.
        r.clock.advance(3600)
        assert await worker.deliver_due() == 0
        assert len(r.hooks.messages(r.bots["grp"])) == 1
        assert worker.broken() == {}


async def test_a_30_alert_burst_to_dingtalk_is_paced_and_nothing_is_lost(db_url: str) -> None:
    async with rig(db_url) as r:
        sink = r.sink("ding", "dingtalk", secret="SECburst")
        events = [failure(f"j-{i:02d}", graph=f"prod-g{i:02d}") for i in range(30)]
        await enqueue_routed(r, events, [subscription(sink.target)])
        worker = r.worker()
        await r.drain(worker)
        received = r.hooks.messages(r.bots["ding"])
        assert len(received) == 30
        graphs = sorted(json.dumps(b, ensure_ascii=False).split("prod-g")[1][:2] for b in received)
        assert graphs == [f"{i:02d}" for i in range(30)]
        # Paced, not refused: DingTalk never had to say "too fast" (which costs 10 minutes).
        assert all(status == 200 and (answer or {}).get("errcode") == 0 for _, _, status, answer in r.hooks.attempts)
        stamps = [m.at for m in r.hooks.received]
        assert all(sum(1 for s in stamps if t - 60 < s <= t) <= 20 for t in stamps)
        assert stamps[-1] - stamps[0] >= 60  # the last ten waited for the window


@pytest.mark.parametrize(("platform", "count", "per_s", "window_s"), [("lark", 12, 5, 1.0), ("wecom", 25, 20, 60.0)])
async def test_bursts_to_lark_and_wecom_stay_within_their_limits(
    db_url: str, platform: Platform, count: int, per_s: int, window_s: float
) -> None:
    async with rig(db_url) as r:
        sink = r.sink("b", platform, secret=SECRETS[platform])
        events = [failure(f"j-{i:02d}", graph=f"prod-g{i:02d}") for i in range(count)]
        await enqueue_routed(r, events, [subscription(sink.target)])
        await r.drain(r.worker(), step_s=0.5)
        assert len(r.hooks.messages(r.bots["b"])) == count
        assert len(r.hooks.attempts) == count  # nothing refused, nothing sent twice
        stamps = [m.at for m in r.hooks.received]
        assert all(sum(1 for s in stamps if t - window_s < s <= t) <= per_s for t in stamps)


HOSTILE = '@all <at user_id="all"></at> <@all> @everyone [click](https://evil.example) **b** <font color=red>x</font>'


@pytest.mark.parametrize("platform", ["lark", "dingtalk", "wecom", "teams"])
async def test_hostile_text_through_the_stand_in_pings_nobody(db_url: str, platform: Platform) -> None:
    async with rig(db_url) as r:
        sink = r.sink("h", platform, secret=SECRETS[platform])
        await enqueue_routed(r, [failure(reason=HOSTILE, graph=f"prod-{HOSTILE}")], [subscription(sink.target)])
        await r.worker().deliver_due()
        [body] = r.hooks.messages(r.bots["h"])
        assert not pings_everyone(platform, body)
        assert "evil.example" in json.dumps(body, ensure_ascii=False)  # shown, inert


async def test_a_rate_limited_answer_waits_out_the_window_and_then_delivers(db_url: str) -> None:
    async with rig(db_url) as r:
        sink = r.sink("ding", "dingtalk")
        # Someone else posts to the same robot: DingTalk refuses, for 10 minutes.
        r.hooks._windows.clear()
        for _ in range(21):
            await r.client.post(r.hooks.url_for(r.bots["ding"]), json={"msgtype": "text", "text": {"content": "x"}})
        await enqueue_routed(r, [failure()], [subscription(sink.target)])
        worker = r.worker()
        await worker.deliver_due()
        assert r.hooks.attempts[-1][3] == {
            "errcode": 130101,
            "errmsg": "send too fast, exceed 20 times per minute",
        }
        assert await r.pending() == 1
        r.clock.advance(300)
        assert await worker.deliver_due() == 0  # not due before the window ends
        await r.drain(worker, step_s=60)
        assert len(r.hooks.messages(r.bots["ding"])) == 21


@pytest.mark.parametrize(
    ("platform", "bot", "secret", "why"),
    [
        ("lark", {"secret": "right"}, "wrong", "signature refused"),
        ("lark", {"keywords": ("DEPLOY",)}, None, "keyword"),
        ("lark", {"ip_refused": True}, None, "allow-list"),
        ("dingtalk", {"secret": "SECright"}, "SECwrong", "signature refused"),
        ("dingtalk", {"keywords": ("DEPLOY",)}, None, "keyword"),
        ("dingtalk", {"ip_refused": True}, None, "allow-list"),
    ],
)
async def test_a_misconfigured_sink_is_broken_by_name_and_its_alerts_wait(
    db_url: str, platform: Platform, bot: dict[str, Any], secret: str | None, why: str
) -> None:
    async with rig(db_url) as r:
        made = r.hooks.add(WebhookBot(platform, token="tok-x", **bot))
        sink = SinkSettings(
            name="ops",
            type=platform,
            url=SecretStr(r.hooks.url_for(made)),
            secret=SecretStr(secret) if secret else None,
        )
        r.sinks.append(sink)
        await enqueue_routed(r, [failure()], [subscription(sink.target)])
        worker = r.worker()
        await worker.deliver_due()
        broken = worker.broken()
        assert list(broken) == ["ops"] and why in broken["ops"]
        assert "tok-x" not in broken["ops"] and (secret or "§") not in broken["ops"]
        assert await r.pending() == 1  # kept, not dropped: it goes out once the sink is fixed
        # `ges-bot check` (another process) sees it in the outbox, by the sink's name only.
        backlog = await r.store.sink_backlog()
        assert list(backlog) == ["sink:ops"] and backlog["sink:ops"][0] == 1
        report = Report()
        await check_sinks(
            Config(settings=Settings(), projects=(), subscriptions=(), sinks=(sink,)), report, backlog=backlog
        )
        [waiting] = [f for f in report.findings if "waiting" in f.summary]
        assert not waiting.ok and why in waiting.summary and "tok-x" not in waiting.summary


async def test_an_invalid_webhook_is_broken_for_each_platform(db_url: str) -> None:
    async with rig(db_url) as r:
        for platform in ("lark", "dingtalk", "wecom", "teams"):
            made = WebhookBot(platform, token="gone")  # never added: the bot was removed
            r.sinks.append(SinkSettings(name=f"old-{platform}", type=platform, url=SecretStr(r.hooks.url_for(made))))
        events = [failure()]
        await enqueue_routed(r, events, [subscription(s.target, -i - 1) for i, s in enumerate(r.sinks)])
        worker = r.worker()
        await worker.deliver_due()
        assert sorted(worker.broken()) == ["old-dingtalk", "old-lark", "old-teams", "old-wecom"]
        assert all("invalid" in why for why in worker.broken().values())


async def test_wecom_oversized_answer_gets_a_shorter_rendering(db_url: str) -> None:
    async with rig(db_url) as r:
        sink = r.sink("wc", "wecom")
        huge = "数据" * 3000
        await enqueue_routed(r, [failure(reason=huge)], [subscription(sink.target)])
        await r.worker().deliver_due()
        [body] = r.hooks.messages(r.bots["wc"])
        assert len(body["markdown"]["content"].encode()) <= 4096


async def test_teams_throttle_honours_retry_after(db_url: str) -> None:
    async with rig(db_url) as r:
        sink = r.sink("t", "teams", throttle_count=1, throttle_retry_after=42)
        await enqueue_routed(r, [failure()], [subscription(sink.target)])
        worker = r.worker()
        await worker.deliver_due()
        assert await r.pending() == 1
        r.clock.advance(41)
        assert await worker.deliver_due() == 0
        r.clock.advance(10)
        assert await worker.deliver_due() == 1
        assert len(r.hooks.messages(r.bots["t"])) == 1


@pytest.mark.parametrize(
    ("platform", "status", "body", "outcome"),
    [
        ("lark", 200, {"code": 0, "msg": "success"}, Outcome.SENT),
        ("lark", 200, {"code": 9499, "msg": "too many requests"}, Outcome.RATE),
        ("lark", 200, {"code": 11232, "msg": "frequency limited"}, Outcome.RATE),
        ("lark", 200, {"code": 19021, "msg": "sign match fail"}, Outcome.BROKEN),
        ("lark", 200, {"code": 19022, "msg": "Ip Not Allowed"}, Outcome.BROKEN),
        ("lark", 200, {"code": 19024, "msg": "Key Words Not Found"}, Outcome.BROKEN),
        ("lark", 200, {"code": 19001, "msg": "token invalid"}, Outcome.BROKEN),
        ("lark", 200, {"code": 230025, "msg": "too long"}, Outcome.OVERSIZED),
        ("lark", 400, {"code": 9499, "msg": "Bad Request"}, Outcome.REFUSED),
        ("dingtalk", 200, {"errcode": 0, "errmsg": "ok"}, Outcome.SENT),
        ("dingtalk", 200, {"errcode": 130101, "errmsg": "send too fast"}, Outcome.RATE),
        ("dingtalk", 200, {"errcode": 310000, "errmsg": "keywords not in content"}, Outcome.BROKEN),
        ("dingtalk", 200, {"errcode": 310000, "errmsg": "sign not match"}, Outcome.BROKEN),
        ("dingtalk", 200, {"errcode": 310000, "errmsg": "ip 1.2.3.4 not in whitelist"}, Outcome.BROKEN),
        ("dingtalk", 200, {"errcode": 300001, "errmsg": "token is not exist"}, Outcome.BROKEN),
        ("dingtalk", 200, {"errcode": 460101, "errmsg": "message too long"}, Outcome.OVERSIZED),
        ("wecom", 200, {"errcode": 0, "errmsg": "ok"}, Outcome.SENT),
        ("wecom", 200, {"errcode": 45009, "errmsg": "api freq out of limit"}, Outcome.RATE),
        ("wecom", 200, {"errcode": 93000, "errmsg": "invalid webhook url"}, Outcome.BROKEN),
        ("wecom", 200, {"errcode": 40058, "errmsg": "exceed max length"}, Outcome.OVERSIZED),
        ("teams", 202, None, Outcome.SENT),
        ("teams", 429, None, Outcome.RATE),
        ("teams", 401, {"error": {"code": "DirectApiAuthorizationRequired"}}, Outcome.BROKEN),
        ("teams", 404, None, Outcome.BROKEN),
        ("teams", 413, None, Outcome.OVERSIZED),
        ("teams", 400, {"error": {"code": "InvalidRequestContent"}}, Outcome.REFUSED),
        ("teams", 502, None, Outcome.RETRY),
        ("slack", 200, "ok", Outcome.SENT),
        ("slack", 404, "no_service", Outcome.BROKEN),
        ("slack", 410, "channel_is_archived", Outcome.BROKEN),
        ("slack", 400, "invalid_payload", Outcome.REFUSED),
    ],
)
def test_each_documented_answer_is_classified(platform: str, status: int, body: Any, outcome: Outcome) -> None:
    assert classify(platform, status, body).outcome is outcome


def test_a_rate_limit_answer_says_how_long_to_wait() -> None:
    assert classify("dingtalk", 200, {"errcode": 130101, "errmsg": "x"}).retry_after == 600.0
    assert classify("teams", 429, None, httpx.Headers({"Retry-After": "42"})).retry_after == 42.0


async def test_a_timeout_is_retried_and_names_no_url(db_url: str) -> None:
    async with rig(db_url) as r:
        # Nothing listens on this port: the connection is refused.
        from tests.support.asgi import free_port

        sink = SinkSettings(
            name="down",
            type="wecom",
            url=SecretStr(f"http://127.0.0.1:{free_port()}/cgi-bin/webhook/send?key=SECRETKEY"),
        )
        r.sinks.append(sink)
        [d] = await enqueue_routed(r, [failure()], [subscription(sink.target)])
        await r.worker().deliver_due()
        item = await r.store.outbox_item(1)
        assert item is not None and item.state == OutboxState.PENDING
        assert item.last_error is not None and "SECRETKEY" not in item.last_error
        assert d.channel == "sink:down"


async def test_a_failure_routed_to_slack_and_dingtalk_is_delivered_exactly_once_across_a_replica_kill(
    db_url: str,
) -> None:
    from ges_bot.notify.delivery import DeliveryPolicy, DeliveryWorker
    from ges_bot.notify.slack import WebApiGateway
    from ges_bot.standin.slack import DEFAULT_BOT_TOKEN, Channel, SlackStandIn

    slack = SlackStandIn(channels=[Channel("C0ALERTS", "alerts")])
    async with rig(db_url) as r, serve(slack.app) as slack_url:
        slack.base_url = slack_url
        gateway = WebApiGateway(DEFAULT_BOT_TOKEN, base_url=slack.api_url, timeout=5.0)
        try:
            sink = r.sink("dba", "dingtalk", secret="SECdba", keywords=("GES",))
            subs = [subscription("C0ALERTS", -1), subscription(sink.target, -2)]
            deliveries = await enqueue_routed(r, [failure()], subs)
            assert sorted(d.channel for d in deliveries) == ["C0ALERTS", "sink:dba"]

            # Replica A claims both rows and is killed before it posts anything.
            lease = 120.0
            assert len(await r.store.claim_outbox("replica-a", r.clock(), 10, lease)) == 1
            assert len(await r.store.claim_sink_outbox("replica-a", r.clock(), 10, lease)) == 1

            # Replica B: nothing is due while A's claims last; everything after.
            policy = DeliveryPolicy(channel_interval_s=0.01, idle_poll_s=0.02, claim_lease_s=lease)
            slack_worker = DeliveryWorker(
                r.store, gateway, {"prod": PROJECT}, worker_id="replica-b", clock=r.clock, policy=policy
            )
            sink_worker = r.worker("replica-b")
            assert await slack_worker.deliver_due() == 0
            assert await sink_worker.deliver_due() == 0
            r.clock.advance(lease + 1)
            await slack_worker.deliver_due()
            assert await sink_worker.deliver_due() == 1
            # And later rounds find nothing left: each was delivered once.
            r.clock.advance(3600)
            await slack_worker.deliver_due()
            assert await sink_worker.deliver_due() == 0

            posts = [c for c in slack.calls_to("chat.postMessage") if c.params.get("channel") == "C0ALERTS"]
            assert len(posts) == 1
            [ding] = r.hooks.messages(r.bots["dba"])
            assert "ImportGraph failed" in json.dumps(ding, ensure_ascii=False)
            assert await r.pending() == 0
        finally:
            await gateway.aclose()


async def test_a_zh_cn_sink_receives_the_alert_in_chinese(db_url: str) -> None:
    async with rig(db_url) as r:
        made = r.hooks.add(WebhookBot("lark", token="tok-zh", secret="lark-zh"))
        sink = SinkSettings(
            name="zh", type="lark", url=SecretStr(r.hooks.url_for(made)), secret=SecretStr("lark-zh"), locale="zh-CN"
        )
        r.sinks.append(sink)
        await enqueue_routed(r, [failure()], [subscription(sink.target)])
        await r.worker().deliver_due()
        [body] = r.hooks.messages(made)
        assert body["card"]["header"]["title"]["content"] == "🔴 导入图失败 · prod-movies"
        assert "失败原因" in json.dumps(body, ensure_ascii=False)


async def test_the_slack_worker_and_the_sink_worker_claim_only_their_own_rows(db_url: str) -> None:
    async with rig(db_url) as r:
        await enqueue_routed(r, [failure()], [subscription("C0ALERTS", -1), subscription("sink:x", -2)])
        slack_rows = await r.store.claim_outbox("w", r.clock(), 10, 60)
        sink_rows = await r.store.claim_sink_outbox("w", r.clock(), 10, 60)
        assert [i.delivery.channel for i in slack_rows] == ["C0ALERTS"]
        assert [i.delivery.channel for i in sink_rows] == ["sink:x"]


async def test_a_broken_sink_is_probed_by_one_row_while_the_rest_wait_unsent(db_url: str) -> None:
    async with rig(db_url) as r:
        sink = r.sink("ops", "dingtalk", keywords=("DEPLOY",))
        events = [failure(f"j-{i}", graph=f"prod-g{i}") for i in range(5)]
        await enqueue_routed(r, events, [subscription(sink.target)])
        worker = r.worker()
        await worker.deliver_due()
        assert len(r.hooks.attempts) == 1  # one refusal told us; the other four were not posted
        assert await r.pending() == 5
        # The group fixes its keyword; the next probe succeeds and the rest follow.
        r.bots["ops"].keywords = ("GES",)
        await r.drain(worker, step_s=60, limit_s=3600)
        assert len(r.hooks.messages(r.bots["ops"])) == 5
        assert worker.broken() == {}


async def test_a_slack_incoming_webhook_sink_gets_the_house_alert_without_buttons(db_url: str) -> None:
    async with rig(db_url) as r:
        sink = r.sink("other-ws", "slack")
        await enqueue_routed(r, [failure(reason="<!channel> @here broke")], [subscription(sink.target)])
        await r.worker().deliver_due()
        [body] = r.hooks.messages(r.bots["other-ws"])
        assert "ImportGraph" in body["text"]
        assert all(block["type"] != "actions" for block in body["blocks"])
        assert not pings_everyone("slack", body)
        assert await r.pending() == 0


async def test_a_revoked_slack_incoming_webhook_is_a_broken_sink(db_url: str) -> None:
    async with rig(db_url) as r:
        gone = WebhookBot("slack", token="revoked")  # never added: Slack answers 404 no_service
        r.sinks.append(SinkSettings(name="gone", type="slack", url=SecretStr(r.hooks.url_for(gone))))
        await enqueue_routed(r, [failure()], [subscription("sink:gone")])
        worker = r.worker()
        await worker.deliver_due()
        assert "no_service" in worker.broken()["gone"]
        assert await r.pending() == 1


async def test_alerts_waiting_for_a_sink_are_not_slacks_backlog(db_url: str) -> None:
    async with rig(db_url) as r:
        await enqueue_routed(r, [failure()], [subscription("C0ALERTS", -1), subscription("sink:x", -2)])
        health = await r.store.health(r.clock())
        # The ops watch reads this as "Slack keeps failing": only Slack's own rows count.
        assert health.outbox_pending == 1
        assert await r.store.sink_backlog() == {"sink:x": (1, None)}


async def test_a_short_claim_lease_still_leaves_time_to_post(db_url: str) -> None:
    async with rig(db_url) as r:
        sink = r.sink("ding", "dingtalk")
        await enqueue_routed(r, [failure()], [subscription(sink.target)])
        worker = SinkWorker(
            r.store,
            r.sinks,
            {"prod": PROJECT},
            SinkSender(r.client, clock=r.clock.seconds),
            worker_id="w",
            clock=r.clock,
            # GES_BOT_DELIVERY_LEASE=8 with a 30 s margin would leave no time at all.
            policy=SinkPolicy(claim_lease_s=8.0, lease_margin_s=30.0),
        )
        assert await worker.deliver_due() == 1
        assert len(r.hooks.messages(r.bots["ding"])) == 1
