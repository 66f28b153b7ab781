"""Several ``ges-bot run`` replicas on one PostgreSQL database: every alert arrives exactly once.

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

from ges_bot.notify.delivery import DeliveryPolicy
from ges_bot.notify.render import MAX_EVENTS_INLINE
from ges_bot.standin.slack import SlackStandIn
from tests.reliability.conftest import Stack
from tests.reliability.world import (
    Workload,
    claimed_alerts,
    delivering_replicas,
    dump_outbox,
    expected_alerts,
    overflow_alerts,
    poll_lease_holder,
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


@pytest.mark.timeout(240)
async def test_kill_9_at_random_moments_loses_nothing(stack: Stack) -> None:
    """Three replicas; one is ``kill -9``-ed every couple of seconds — alternately the one ticking
    (it holds the poll lease) and the busiest one posting (it holds outbox claims) — and a
    replacement is started each time. Nothing may be missing — thread replies included, they are
    outbox rows — and a duplicate is only allowed inside the documented crash window: a message
    the killed replica had posted and not yet marked sent when it died, at most
    ``max_concurrent_posts`` of them per kill, each posted twice at most."""
    rng = random.Random(9)
    live = list(await asyncio.gather(*(stack.start(f"k{i}", poll_interval=POLL_INTERVAL) for i in range(3))))
    await wait_for_baseline(live[0])
    plan = subscription_plan()
    await subscribe(stack.slack, live, plan)

    moments: list[str] = []
    in_window: set[tuple[str, str]] = set()
    windows: list[set[tuple[str, str]]] = []
    window_sizes: list[int] = []

    async def killer() -> None:
        for n in range(KILLS):
            await asyncio.sleep(rng.uniform(1.0, 2.5))
            by_id = {bot.env["GES_BOT_REPLICA_ID"]: bot for bot in live if bot.alive}
            if n % 2 == 0:
                moment, wanted = "mid-tick", [await poll_lease_holder(stack.database_url)]
            else:
                moment, wanted = "mid-delivery", await delivering_replicas(stack.database_url)
            victim = next((by_id[w] for w in wanted if w in by_id), None) or rng.choice(list(by_id.values()))
            victim.kill()
            await victim.wait()
            window = await claimed_alerts(stack.database_url, victim.env["GES_BOT_REPLICA_ID"])
            in_window.update(window)
            windows.append(window)
            moments.append(moment)
            window_sizes.append(len(window))
            live.remove(victim)
            # The replacement starts in the background, as an orchestrator would restart a pod.
            replacement = stack.fleet.prepare(f"k{3 + n}", stack.env(poll_interval=POLL_INTERVAL))
            replacement.launch()
            live.append(replacement)

    started = time.monotonic()
    workload = Workload(stack.emu, random.Random(99))
    await asyncio.gather(killer(), workload.run(300, per_wave=15, pause=0.5))
    for bot in live:
        await bot.wait_healthy(30)
    expected = expected_alerts(workload.finished, plan)
    result = await settle(stack.slack, expected, database_url=stack.database_url, timeout=90)
    elapsed = time.monotonic() - started
    await dump_outbox(stack.database_url, stack.directory)
    # Alerts past the first five of one message, shown in its thread replies.
    overflow = await overflow_alerts(stack.database_url, MAX_EVENTS_INLINE)
    reposted = reposted_messages(stack.slack)
    per_worker = DeliveryPolicy().max_concurrent_posts
    allowed = KILLS * per_worker
    # A re-post is due to the kill of the replica that had claimed its row (a message whose row
    # several victims held counts for each of them).
    per_kill = [sum(1 for ids in reposted if ids & window) for window in windows]
    report(
        "kill-9",
        {
            "replicas": 3,
            "transitions": 300,
            "kills": len(moments),
            "kill_moments": moments,
            "alerts_in_crash_window": window_sizes,
            "expected": result.expected,
            "delivered": result.delivered,
            "duplicated": result.duplicate_count,
            "messages_posted_twice": len(reposted),
            "messages_posted_twice_allowed": allowed,
            "messages_posted_twice_per_kill": per_kill,
            "overflow_alerts": len(overflow),
            "messages": result.messages,
            "seconds": round(elapsed, 1),
        },
        stack.directory,
        stack.slack,
    )
    assert len(moments) == KILLS
    # The others carried on: every replica that was not killed is still running.
    assert all(bot.alive for bot in live), stack.fleet.all_logs()[-5000:]
    assert not result.missing, f"{result.summary()}; missing: {result.missing[:5]}"
    assert not result.unexpected, f"{result.summary()}; {result.unexpected[:5]}"
    # Every duplicate is an alert a killed replica had claimed and not marked sent when it died …
    outside = sorted(set(result.duplicates) - in_window)
    assert not outside, f"{result.summary()}; duplicates outside the crash window: {outside[:5]}"
    assert all(n == 2 for n in result.duplicates.values()), result.duplicates
    # … and each kill re-posted at most max_concurrent_posts messages.
    assert len(reposted) <= allowed, f"{len(reposted)} messages posted twice over {KILLS} kills (at most {allowed})"
    assert max(per_kill, default=0) <= per_worker, f"messages posted twice per kill: {per_kill} (at most {per_worker})"
