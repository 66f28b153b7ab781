"""GES and Slack misbehave while two replicas work: nothing is lost, nothing is doubled.

The emulator injects 5xx bursts, answers too slow for the client's timeout, malformed and
truncated JSON, a list that shifts between pages and expired IAM tokens; the Slack stand-in
answers 503 for a while, storms of 429 and calls that time out without taking effect. A post that
times out *after* Slack took it is the one case that may show twice (Slack has no idempotency
key); it is measured on its own, as is a recovery reply interrupted part-way.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from ges_bot.notify.render import MAX_EVENTS_INLINE
from tests.reliability.conftest import Stack
from tests.reliability.world import (
    Sub,
    Workload,
    db_rows,
    delivered_alerts,
    dump_outbox,
    expected_alerts,
    overflow_alerts,
    report,
    settle,
    subscribe,
    subscription_plan,
    wait_for_baseline,
    wait_outbox_drained,
)

pytestmark = pytest.mark.reliability

TRANSITIONS = 200


@pytest.mark.timeout(240)
async def test_ges_and_slack_faults_lose_and_double_nothing(stack: Stack) -> None:
    bots = list(await asyncio.gather(*(stack.start(f"f{i}", auth="password") for i in range(2))))
    await wait_for_baseline(bots[0])
    plan = subscription_plan()
    await subscribe(stack.slack, bots, plan)
    emu, slack = stack.emu, stack.slack
    injected: list[str] = []

    async def ges(name: str, **spec: object) -> None:
        await emu.fault(**spec)
        injected.append(f"ges:{name}")

    async def chaos() -> None:
        steps = [
            lambda: ges("5xx-burst", status=503, count=6),
            lambda: ges("timeout", latency_ms=2500, count=2),
            lambda: ges("malformed", malformed=True, count=2),
            lambda: ges("truncated", truncated=True, count=2),
            lambda: ges("shift", shift=True, count=3),
            lambda: ges("502-burst", status=502, count=4),
        ]
        for n, step in enumerate(steps):
            await step()
            if n % 2 == 0:
                await emu.expire_tokens()
                injected.append("ges:expire-tokens")
            await asyncio.sleep(0.8)
        slack.outage("chat.postMessage", until=3.0, status=503)
        injected.append("slack:503-for-3s")
        await asyncio.sleep(3.5)
        slack.fail("chat.postMessage", status=429, retry_after=1, count=40)
        injected.append("slack:429-storm-x40")
        await asyncio.sleep(2.0)
        # Too slow for the bot's 2 s timeout, then an error: Slack never took these posts.
        slack.fail("chat.postMessage", delay=2.5, status=503, count=4)
        injected.append("slack:timeout-x4")
        slack.fail("chat.update", status=500, count=3)
        injected.append("slack:update-500-x3")

    started = time.monotonic()
    workload = Workload(emu, random.Random(5))
    await asyncio.gather(chaos(), workload.run(TRANSITIONS, per_wave=15, pause=0.5))
    expected = expected_alerts(workload.finished, plan)
    result = await settle(slack, expected, database_url=stack.database_url, timeout=120)
    elapsed = time.monotonic() - started
    await dump_outbox(stack.database_url, stack.directory)
    overflow = await overflow_alerts(stack.database_url, MAX_EVENTS_INLINE)
    leftover = await db_rows(
        stack.database_url, "SELECT state, count(*) AS n FROM outbox WHERE state <> 'sent' GROUP BY state"
    )
    stats = await emu.stats()
    report(
        "faults",
        {
            "replicas": 2,
            "transitions": TRANSITIONS,
            "faults_injected": injected,
            "ges_answers": stats["responses"],
            "slack_failed_calls": sum(1 for c in slack.calls if not c.ok),
            "expected": result.expected,
            "delivered": result.delivered,
            "duplicated": result.duplicate_count,
            "alerts_in_thread_replies": len(overflow),
            "outbox_not_sent": leftover,
            "messages": result.messages,
            "seconds": round(elapsed, 1),
        },
        stack.directory,
        slack,
    )
    assert all(bot.alive for bot in bots), stack.fleet.all_logs()[-5000:]
    # Every fault really reached the bots.
    assert not slack.faults, slack.faults
    assert not (await emu.control.get("/_emulator/faults")).json()["faults"]
    # Every alert arrived, those shown in thread replies (an alert's overflow) included …
    assert not result.missing, f"{result.summary()}; missing: {result.missing[:5]}"
    assert overflow, "the workload must make alerts long enough to continue in their threads"
    assert not result.duplicates, f"{result.summary()}; {list(result.duplicates.items())[:5]}"
    assert not result.unexpected, f"{result.summary()}; {result.unexpected[:5]}"
    # … and nothing is left: no row pending, none dead.
    assert not leftover, leftover
    for bot in bots:
        status, health = await bot.health()
        assert status == 200 and (health["outbox_dead"], health["outbox_pending"]) == (0, 0), health


@pytest.mark.timeout(120)
async def test_a_post_that_times_out_after_slack_took_it_shows_at_most_twice(stack: Stack) -> None:
    """The documented limit: Slack posted the message but the answer came too late; the bot cannot
    know, retries, and the alert shows twice — once per such timeout, never more."""
    bot = await stack.start("t0")
    await wait_for_baseline(bot)
    plan = [Sub("C0REL00", "g00", ("all",))]
    await subscribe(stack.slack, [bot], plan)
    stack.slack.fail("chat.postMessage", delay=2.5, count=2)  # slow, but it does take effect
    workload = Workload(stack.emu, random.Random(1), graphs=("g00",))
    await workload.run(6, per_wave=2, pause=0.6)
    expected = expected_alerts(workload.finished, plan)
    result = await settle(stack.slack, expected, database_url=stack.database_url, timeout=60)
    report(
        "slack-late-timeouts",
        {"landed_timeouts": 2, "expected": result.expected, "duplicated": result.duplicate_count},
        stack.directory,
        stack.slack,
    )
    assert not result.missing, result.summary()
    assert not result.unexpected, result.summary()
    # Each late timeout makes the message it hit (with every alert it carried) show once more.
    posted = stack.slack.messages("C0REL00")
    distinct = {(m.get("thread_ts"), m["text"]) for m in posted}
    assert 1 <= len(posted) - len(distinct) <= 2, [m["text"] for m in posted]
    assert all(n - 1 <= 2 for n in result.duplicates.values()), result.duplicates


@pytest.mark.timeout(120)
async def test_a_recovery_reply_interrupted_part_way_is_not_posted_twice(stack: Stack) -> None:
    """Two imports of one graph fail (one alert), then both succeed in one tick (one recovery row
    with two events). Slack refuses the second reply: the first must not be posted again."""
    bot = await stack.start("rec", poll_interval=1.0)
    await wait_for_baseline(bot)
    await subscribe(stack.slack, [bot], [Sub("C0REL00", "g00", ("all",))])
    state, slack = stack.emu.state, stack.slack
    jobs = state.add_many(
        [{"status": "failed", "job_name": name, "related_graph": "g00"} for name in ("ImportGraph", "ExportGraph")]
    )
    await slack.wait_for(lambda: slack.messages("C0REL00"), timeout=20)
    # Both run again and succeed, in one tick.
    retries = state.add_many(
        [{"status": "success", "job_name": name, "related_graph": "g00"} for name in ("ImportGraph", "ExportGraph")]
    )
    slack.fail("chat.update", delay=1.0, count=2)  # slow updates: room to act between the two replies

    def first_reply() -> bool:
        return any(m.get("thread_ts") for m in slack.messages("C0REL00"))

    await slack.wait_for(first_reply, timeout=20)
    slack.fail("chat.postMessage", status=503, count=1)
    retried_ids = {j.job_id for j in retries}
    await slack.wait_for(
        lambda: retried_ids <= {job for (_, job) in delivered_alerts(slack)} and not slack.faults, timeout=40
    )
    # Nothing left to post (no row pending): a second copy of the first reply would be posted by now.
    health = await wait_outbox_drained(bot, 30)
    assert health["outbox_pending"] == 0, health
    seen = delivered_alerts(slack)
    report(
        "recovery-part-way",
        {"replies": {j: seen[("C0REL00", j)] for j in sorted(retried_ids)}},
        stack.directory,
        slack,
    )
    assert all(seen[("C0REL00", j.job_id)] == 1 for j in jobs), seen
    assert all(seen[("C0REL00", j)] == 1 for j in retried_ids), seen
