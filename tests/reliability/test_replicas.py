"""Several ``ges-bot run`` replicas on one PostgreSQL database: every alert arrives exactly once.
(Replicas that die or stop mid-work: ``test_failover.py``.)

Two and three replicas share one database, the emulator and the Slack stand-in. Subscriptions are
made with ``/gesjobs subscribe`` sent round robin to the replicas (any replica serves commands);
then 500 job transitions across 20 graphs are made and each (channel, job) alert that the
subscriptions ask for must be in exactly one accepted ``chat.postMessage``. The poll lease must
keep ticks to one replica at a time, and the outbox must be shared (more than one replica sends).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time

import pytest

from ges_bot.standin.slack import SlackStandIn
from tests.reliability.conftest import Stack
from tests.reliability.world import (
    Workload,
    expected_alerts,
    report,
    settle,
    subscribe,
    subscription_plan,
    wait_for_baseline,
    wait_outbox_drained,
)

pytestmark = pytest.mark.reliability

POLL_INTERVAL = 0.5
TRANSITIONS = 500


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.timeout(240)
@pytest.mark.parametrize("replicas", [2, 3])
async def test_every_alert_arrives_exactly_once(stack: Stack, replicas: int) -> None:
    t0 = time.monotonic()
    bots = await asyncio.gather(*(stack.start(f"r{i}", poll_interval=POLL_INTERVAL) for i in range(replicas)))
    t_started = time.monotonic() - t0
    await wait_for_baseline(bots[0])
    plan = subscription_plan()
    await subscribe(stack.slack, list(bots), plan)
    t_subscribed = time.monotonic() - t0

    started = time.monotonic()
    workload = Workload(stack.emu, random.Random(replicas))
    await workload.run(TRANSITIONS, per_wave=25, pause=0.4)
    t_workload = time.monotonic() - started
    expected = expected_alerts(workload.finished, plan)
    result = await settle(stack.slack, expected, database_url=stack.database_url, timeout=120)
    elapsed = time.monotonic() - started
    for bot in bots:
        await wait_outbox_drained(bot, 10)

    scraped = [await bot.metrics() for bot in bots]
    ticks_ok = [metric(m, "ges_bot_poll_ticks_total", result="ok") for m in scraped]
    ticks_skipped = [metric(m, "ges_bot_poll_ticks_total", result="skipped") for m in scraped]
    sent = [metric(m, "ges_bot_slack_messages_total", result="sent") for m in scraped]
    report(
        f"replicas-{replicas}",
        {
            "replicas": replicas,
            "transitions": TRANSITIONS,
            "graphs": 20,
            "channels": 20,
            "expected": result.expected,
            "delivered": result.delivered,
            "duplicated": result.duplicate_count,
            "messages": result.messages,
            "seconds": round(elapsed, 1),
            "phases": [round(t_started, 1), round(t_subscribed, 1), round(t_workload, 1)],
            "ticks_ok": ticks_ok,
            "ticks_skipped": ticks_skipped,
            "sent_by_replica": sent,
        },
        stack.directory,
        stack.slack,
    )
    assert all(bot.alive for bot in bots), stack.fleet.all_logs()[-5000:]
    assert not result.missing, f"{result.summary()}; first missing: {result.missing[:5]}"
    assert not result.duplicates, f"{result.summary()}; {list(result.duplicates.items())[:5]}"
    assert not result.unexpected, f"{result.summary()}; {result.unexpected[:5]}"
    # One poller at a time: together the replicas tick about once per interval, not N times.
    assert sum(ticks_ok) <= 1.5 * (elapsed + 30) / POLL_INTERVAL, (ticks_ok, elapsed)
    assert sum(ticks_skipped) > 0, ticks_skipped
    # The outbox is shared: more than one replica delivered.
    assert sum(1 for n in sent if n > 0) >= 2, sent


KILLS = 6


def reposted_messages(slack: SlackStandIn) -> list[set[tuple[str, str]]]:
    """The (channel, job id) alerts of each accepted ``chat.postMessage`` that repeats an alert an
    earlier one already showed in that channel: the messages posted a second time (a re-post
    repeats a whole row's message)."""
    seen: set[tuple[str, str]] = set()
    again = []
    for message in slack.messages():
        channel = str(message["channel"])
        ids = {(channel, job_id) for job_id in re.findall(r"\*Job id\*\\n`([^`]+)`", json.dumps(message.get("blocks")))}
        if ids & seen:
            again.append(ids)
        seen |= ids
    return again
