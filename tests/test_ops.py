"""The dead man's switch, end to end: GES emulator → runtime(s) → Slack stand-in's ops channel.

Each bot is a real :class:`Runtime` (scheduler, poller, delivery worker, ops watch) configured only
through its environment, with short settings instead of a fake clock: polls every 0.2 s and
``GES_BOT_BLIND_AFTER=1s``. Tests wait on what Slack receives (the stand-in's ``wait_for``) and on
the ops watch's own rounds, never on time.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ges_bot.config import load_config
from ges_bot.domain import EventKind, Subscription
from ges_bot.runtime import Runtime, RuntimeOptions
from ges_bot.slackapp import views
from ges_bot.standin.slack import DEFAULT_BOT_TOKEN, Channel, SlackStandIn
from tests.support.asgi import serve
from tests.support.emulator import EmulatorHandle
from tests.support.world import wire

OPS = "C0OPS"
ALERTS = "C0ALERTS"


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    stand_in = SlackStandIn(
        channels=[Channel(ALERTS, "alerts"), Channel(OPS, "ges-bot-ops"), Channel("C0OLD", "old", is_archived=True)]
    )
    async with serve(stand_in.app) as url:
        stand_in.base_url = url
        yield stand_in


def ges_env(emu: EmulatorHandle, database_url: str) -> dict[str, str]:
    """A bot polling ``emu`` as project ``prod`` every 0.2 s, blind after 1 s, no Slack."""
    return {
        "GES_ENDPOINT": emu.url,
        "GES_PROJECT_ID": emu.project_id,
        "GES_PROJECT_ALIAS": "prod",
        "HUAWEICLOUD_SDK_AK": emu.ak,
        "HUAWEICLOUD_SDK_SK": emu.sk,
        "GES_BOT_DATABASE_URL": database_url,
        "GES_BOT_POLL_INTERVAL": "0.2",
        "GES_BOT_BLIND_AFTER": "1s",
        "GES_BOT_GES_TIMEOUT": "2",
        "GES_BOT_GES_RETRIES": "0",
    }


def env_for(emu: EmulatorHandle, slack: SlackStandIn, database_url: str, **extra: str) -> dict[str, str]:
    env = {
        **ges_env(emu, database_url),
        "GES_BOT_OPS_CHANNEL": OPS,
        "SLACK_BOT_TOKEN": DEFAULT_BOT_TOKEN,
        "SLACK_SIGNING_SECRET": "ops-test-signing-secret",
        "SLACK_API_URL": slack.api_url,
    }
    env.update(extra)
    return {k: v for k, v in env.items() if v != ""}


@contextlib.asynccontextmanager
async def running(env: dict[str, str]) -> AsyncIterator[Runtime]:
    bot = Runtime(load_config(env), options=RuntimeOptions(serve_http=False, poll_jitter_s=0))
    try:
        await bot.start()
        yield bot
    finally:
        await bot.stop()


async def polled_ok(bot: Runtime, since: datetime | None = None) -> None:
    """Wait (on the ops watch's rounds, which follow every tick) for a successful poll (one that
    started after ``since``, when given)."""
    assert bot.ops is not None and bot.store is not None
    for _ in range(200):
        await bot.ops.wait_rounds(1)
        state = await bot.store.poll_state("prod")
        if state is None or state.last_success_at is None or state.consecutive_failures:
            continue
        if since is None or state.last_success_at > since:
            return
    raise AssertionError("the bot never polled GES successfully")


def top_level(slack: SlackStandIn, channel: str) -> list[dict[str, Any]]:
    return [m for m in slack.messages(channel) if not m.get("thread_ts")]


def replies(slack: SlackStandIn, channel: str, ts: str) -> list[dict[str, Any]]:
    return [m for m in slack.messages(channel) if m.get("thread_ts") == ts]


def shown(message: dict[str, Any]) -> str:
    """What a reader sees of a message: its blocks' text (or the fallback text)."""
    blocks = message.get("blocks")
    if isinstance(blocks, str):
        import json

        blocks = json.loads(blocks)
    if blocks:
        return "\n".join(str(b.get("text", {}).get("text", "")) for b in blocks)
    return str(message.get("text", ""))


async def subscribe_alerts(bot: Runtime) -> None:
    assert bot.store is not None
    await bot.store.add_subscription(
        Subscription(
            id=0,
            channel=ALERTS,
            graph_pattern="*",
            kinds=frozenset({EventKind.FAILED, EventKind.PARTIALLY_FAILED}),
            created_by="U0ALICE",
        )
    )


async def test_ges_503_past_the_blind_threshold_posts_one_message_updates_it_and_replies_when_back(
    emu: EmulatorHandle, slack: SlackStandIn, tmp_path: Path
) -> None:
    env = env_for(emu, slack, f"sqlite:///{tmp_path / 'bot.db'}")
    async with running(env) as bot:
        await subscribe_alerts(bot)
        await emu.add_job(
            job_id="seen-running",
            status="running",
            job_name="ImportGraph",
            related_graph="movies",
            begin_time=wire(emu.state.now()),
        )
        await polled_ok(bot, since=bot.clock())
        assert top_level(slack, OPS) == []  # healthy: nothing to say

        await emu.fault(status=503, count=-1)
        now = emu.state.now()
        for i in range(3):  # failures GES will only show once it answers again
            await emu.add_job(
                job_id=f"missed-{i}",
                status="failed",
                job_name="ImportGraph",
                related_graph="movies",
                begin_time=wire(now),
                end_time=wire(now),
                fail_reason="vertex file not found",
            )
        # An end in a status nobody documents may be a failure too: the catch-up counts it.
        await emu.patch_job("seen-running", status="cancelled")

        [posted] = await slack.wait_for(lambda: top_level(slack, OPS), timeout=20)
        text = shown(posted)
        assert "project `prod` is blind" in text
        assert "HTTP 503" in text  # the cause, as GES said it
        assert "service health" in text  # how to fix it
        assert "Since:" in text and "<!date^" in text  # since when, in the reader's zone

        # While it lasts, the one message is kept up to date (the failure count grows).
        [update, *_] = await slack.wait_for(lambda: slack.updates(OPS), timeout=20)
        assert update["ts"] == posted["ts"]
        assert "project `prod` is blind" in shown(update)
        assert len(top_level(slack, OPS)) == 1

        # Without looking at the channel: /healthz, /gesjobs status and the notes say the same.
        health = await bot.health()
        assert health["status"] == "degraded"
        [incident] = health["incidents"]
        assert incident["kind"] == "blind" and incident["subject"] == "prod"
        assert "HTTP 503" in incident["cause"] and "service health" in incident["fix"]
        assert bot.services is not None and bot.store is not None
        status = views.status_message(
            await bot.store.health(bot.clock()),
            ["prod"],
            bot.clock(),
            poll_interval_s=0.2,
            notes=bot.services.notes,
        )
        assert "prod is blind" in str(status.blocks) and "service health" in str(status.blocks)

        await emu.clear_faults()
        [reply] = await slack.wait_for(lambda: replies(slack, OPS, posted["ts"]), timeout=20)
        assert "GES answers again; caught up: 3 failures and 1 unknown outcome alerted." in shown(reply)
        # The catch-up did alert them, in their own channel.
        await slack.wait_for(lambda: slack.messages(ALERTS), timeout=20)
        # The first message now says it is over; still one top-level message.
        [now_shown] = [m for m in slack.history(OPS) if m.get("ts") == posted["ts"]]
        assert "Resolved" in shown(now_shown)
        assert len(top_level(slack, OPS)) == 1
        await bot.ops.wait_rounds(3)  # type: ignore[union-attr]
        assert len(slack.messages(OPS)) == 2  # the message and its one reply: nothing more
        assert (await bot.health())["incidents"] == []
        assert not any(k.startswith("ops:") for k in bot.services.notes)


async def test_refused_credentials_are_reported_at_once_with_the_fix(
    emu: EmulatorHandle, slack: SlackStandIn, tmp_path: Path
) -> None:
    env = env_for(
        emu,
        slack,
        f"sqlite:///{tmp_path / 'bot.db'}",
        HUAWEICLOUD_SDK_SK="not-the-secret-key",
        GES_BOT_BLIND_AFTER="1h",  # refused credentials do not wait for the blind threshold
    )
    async with running(env) as bot:
        [posted] = await slack.wait_for(lambda: top_level(slack, OPS), timeout=20)
        text = shown(posted)
        assert "project `prod` is blind" in text
        assert "refuses the bot's credentials" in text
        assert "HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK" in text  # the fix for AK/SK
        assert "clock" in text
        assert "not-the-secret-key" not in str(slack.calls)  # never echoed
        [incident] = (await bot.health())["incidents"]
        assert "HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK" in incident["fix"]


async def test_without_an_ops_channel_the_log_healthz_and_status_say_it(
    emu: EmulatorHandle, slack: SlackStandIn, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = env_for(
        emu,
        slack,
        f"sqlite:///{tmp_path / 'bot.db'}",
        GES_BOT_OPS_CHANNEL="",
        GES_TOKEN="",
        HUAWEICLOUD_SDK_SK="not-the-secret-key",
    )
    caplog.set_level(logging.ERROR, logger="ges_bot.notify.ops")
    async with running(env) as bot:
        assert bot.ops is not None and bot.services is not None
        for _ in range(200):
            await bot.ops.wait_rounds(1)
            if bot.ops.findings:
                break
        health = await bot.health()
        [incident] = health["incidents"]
        assert "refuses the bot's credentials" in incident["cause"]
        [note] = [v for k, v in bot.services.notes.items() if k == "ops:blind:prod"]
        assert "refuses the bot's credentials" in note and "HUAWEICLOUD_SDK_SK" in note
        logged = [r.getMessage() for r in caplog.records if "prod is blind" in r.getMessage()]
        assert len(logged) == 1 and "HUAWEICLOUD_SDK_SK" in logged[0]
        await bot.ops.wait_rounds(3)
        assert len([r for r in caplog.records if "prod is blind" in r.getMessage()]) == 1  # said once
    assert slack.messages() == []


async def test_a_restart_updates_the_open_incident_instead_of_posting_it_again(
    emu: EmulatorHandle, slack: SlackStandIn, tmp_path: Path
) -> None:
    env = env_for(emu, slack, f"sqlite:///{tmp_path / 'bot.db'}", HUAWEICLOUD_SDK_SK="wrong")
    async with running(env):
        [posted] = await slack.wait_for(lambda: top_level(slack, OPS), timeout=20)
    async with running(env_for(emu, slack, f"sqlite:///{tmp_path / 'bot.db'}")) as bot:
        [reply] = await slack.wait_for(lambda: replies(slack, OPS, posted["ts"]), timeout=20)
        assert "GES answers again; caught up: nothing was missed." in shown(reply)
        assert bot.ops is not None
        await bot.ops.wait_rounds(2)
    assert len(top_level(slack, OPS)) == 1


async def test_a_channel_slack_refuses_is_an_incident_until_it_is_fixed(
    emu: EmulatorHandle, slack: SlackStandIn, tmp_path: Path
) -> None:
    async with running(env_for(emu, slack, f"sqlite:///{tmp_path / 'bot.db'}")) as bot:
        assert bot.store is not None
        await bot.store.add_subscription(
            Subscription(
                id=0, channel="C0OLD", graph_pattern="*", kinds=frozenset({EventKind.FAILED}), created_by="U0ALICE"
            )
        )
        await polled_ok(bot)
        now = emu.state.now()
        await emu.add_job(
            job_id="j-1", status="failed", job_name="ImportGraph", related_graph="movies", begin_time=wire(now)
        )
        [posted] = await slack.wait_for(
            lambda: [m for m in top_level(slack, OPS) if "alerts cannot reach" in shown(m)], timeout=20
        )
        text = shown(posted)
        assert "alerts cannot reach <#C0OLD>" in text
        assert "is_archived" in text and "/invite @ges-bot" in text
        await bot.store.remove_subscription("C0OLD", "*")
        [reply] = await slack.wait_for(lambda: replies(slack, OPS, posted["ts"]), timeout=20)
        assert "Slack accepts alerts for that channel again (or its subscriptions were removed)" in shown(reply)


async def test_an_ops_channel_slack_refuses_is_said_once_in_the_log_and_in_status(
    emu: EmulatorHandle, slack: SlackStandIn, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = env_for(
        emu, slack, f"sqlite:///{tmp_path / 'bot.db'}", GES_BOT_OPS_CHANNEL="C0NOSUCH", HUAWEICLOUD_SDK_SK="wrong"
    )
    caplog.set_level(logging.WARNING, logger="ges_bot.notify.ops")
    async with running(env) as bot:
        assert bot.ops is not None and bot.services is not None
        for _ in range(200):
            await bot.ops.wait_rounds(1)
            if "ops-channel" in bot.services.notes:
                break
        note = bot.services.notes["ops-channel"]
        assert "cannot post to its ops channel C0NOSUCH (Slack answered channel_not_found)" in note
        assert "GES_BOT_OPS_CHANNEL" in note
        await bot.ops.wait_rounds(3)
        said = [r for r in caplog.records if "cannot post to its ops channel" in r.getMessage()]
        assert len(said) == 1
        # The problem it wanted to post is still said everywhere else.
        assert (await bot.health())["incidents"][0]["subject"] == "prod"


@pytest.mark.postgres
def blind_posts(slack: SlackStandIn) -> list[dict[str, Any]]:
    """Top-level ops messages about the blind project (a slow machine may also, rightly, report
    another problem — alerts waiting too long — in a message of its own)."""
    return [m for m in top_level(slack, OPS) if "blind prod" in str(m.get("text"))]


async def test_two_replicas_on_one_postgresql_post_the_incident_once(
    emu: EmulatorHandle, slack: SlackStandIn, pg_url: str
) -> None:
    env_a = env_for(emu, slack, pg_url, GES_BOT_REPLICA_ID="replica-a")
    env_b = env_for(emu, slack, pg_url, GES_BOT_REPLICA_ID="replica-b")
    async with running(env_a) as a, running(env_b) as b:
        assert a.ops is not None and b.ops is not None
        await polled_ok(a)
        # On a loaded machine the first poll may itself outlast the 1 s threshold: that is rightly
        # an incident of its own. Start from a bot that sees no problem, and count from there.
        for _ in range(200):
            await a.ops.wait_rounds(1)
            if not a.ops.findings and not b.ops.findings:
                break
        before = len(blind_posts(slack))
        await emu.fault(status=503, count=-1)
        posted = (await slack.wait_for(lambda: blind_posts(slack)[before:], timeout=30))[0]
        # Both replicas see the project blind; they go on checking, and nobody posts it again.
        for _ in range(100):
            await a.ops.wait_rounds(1)
            if a.ops.findings and b.ops.findings:
                break
        await a.ops.wait_rounds(5)
        await b.ops.wait_rounds(5)
        assert len(blind_posts(slack)) == before + 1
        await emu.clear_faults()
        await slack.wait_for(lambda: replies(slack, OPS, posted["ts"]), timeout=30)
        await a.ops.wait_rounds(5)
        await b.ops.wait_rounds(5)
        assert len(blind_posts(slack)) == before + 1
        assert len(replies(slack, OPS, posted["ts"])) == 1


# --- Prometheus rules for the bot itself -------------------------------------------------------

RULES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus-rules.yml"
#: Series Prometheus makes itself (scrape health), not served by the bot.
PROMETHEUS_OWN = {"up"}


def served_names(exposition: str) -> dict[str, list[Any]]:
    """Series names an exposition declares (by TYPE) or carries, with their samples."""
    from prometheus_client.parser import text_string_to_metric_families

    names: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(exposition):
        declared = {
            "counter": [f"{family.name}_total"],
            "histogram": [f"{family.name}_bucket", f"{family.name}_sum", f"{family.name}_count"],
        }.get(family.type, [family.name])
        for name in declared:
            names.setdefault(name, [])
        for sample in family.samples:
            names.setdefault(sample.name, []).append(sample)
    return names


async def test_the_alert_rules_use_only_metrics_that_metrics_serves(
    emu: EmulatorHandle, slack: SlackStandIn, tmp_path: Path
) -> None:
    import re

    import httpx
    import yaml

    env = env_for(emu, slack, f"sqlite:///{tmp_path / 'bot.db'}", GES_BOT_HTTP_HOST="127.0.0.1", GES_BOT_HTTP_PORT="0")
    bot = Runtime(load_config(env), options=RuntimeOptions(poll_jitter_s=0))
    try:
        await bot.start()
        await polled_ok(bot)
        assert bot.ops is not None
        await bot.ops.wait_rounds(1)
        async with httpx.AsyncClient(timeout=5) as http:
            exposition = (await http.get(f"http://127.0.0.1:{bot.http_port}/metrics")).text
    finally:
        await bot.stop()
    served = served_names(exposition)
    # The health gauges carry the project, and say it is fine.
    [blind] = [s for s in served["ges_bot_project_blind"] if s.labels == {"project": "prod"}]
    assert blind.value == 0
    [lag] = [s for s in served["ges_bot_poll_seconds_since_success"] if s.labels == {"project": "prod"}]
    assert 0 <= lag.value < 60

    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    alerts = {rule["alert"] for rule in rules}
    assert {
        "GesBotDown",
        "GesBotProjectBlind",
        "GesBotPollsStale",
        "GesBotOutboxBacklogGrowing",
        "GesBotDeadRows",
    } <= alerts
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        used = set(re.findall(r"\b(ges_bot_[a-z0-9_]+|up)\b(?=\s*[\[{)\s]|$)", rule["expr"]))
        assert used, rule["alert"]
        unknown = used - set(served) - PROMETHEUS_OWN
        assert not unknown, f"{rule['alert']} uses {sorted(unknown)}, which /metrics does not serve"
