"""Replicas die at every side of every claim, or stop gracefully mid-burst: failover in seconds.

Three ``ges-bot run`` replicas share PostgreSQL; 300 job transitions are made while replicas are
``kill -9``-ed at named points (``ges_bot.faultpoints``): during a poll tick (holding the poll
lease), between claiming an outbox row and posting it, between posting it and recording it, and
while pacing a burst. A point is *armed* through a file; the first replica to reach it announces
itself and parks there until the test kills it — no sleep guesses when a kill lands. A
replacement starts after each kill, as an orchestrator would restart a pod.

Per kill: every alert is delivered (none lost); the messages posted twice because of it stay
within the crash window (``max_concurrent_posts``); and no alert pending at the kill arrives later
than the claim lease + one poll interval + the pacing of its channel after it. A replica stopped
with SIGTERM mid-burst hands everything back at once: no alert waits for a lease (set long in
that test, so a claim left behind would show) and nothing is posted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ges_bot.notify.delivery import DeliveryPolicy
from ges_bot.standin.slack import SlackStandIn
from tests.reliability.conftest import Stack
from tests.reliability.test_replicas import reposted_messages
from tests.reliability.world import (
    CLAIM_LEASE_S,
    Workload,
    arrivals,
    claimed_alerts,
    db_rows,
    dump_outbox,
    expected_alerts,
    report,
    settle,
    subscribe,
    subscription_plan,
    wait_for_baseline,
)
from tests.support.processes import BotProcess

pytestmark = pytest.mark.reliability

POLL_INTERVAL = 0.5
TRANSITIONS = 300
#: Two kills at the riskiest points (a tick, the crash window), one at each of the others.
SCHEDULE = ("poll.tick", "delivery.claimed", "delivery.posted", "delivery.pacing", "poll.tick", "delivery.posted")
POLICY = DeliveryPolicy()


class Trap:
    """Arms one fault point at a time for every replica sharing ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def env(self) -> dict[str, str]:
        return {"GES_BOT_FAULT_DIR": str(self.directory)}

    def arm(self, point: str) -> None:
        (self.directory / "hit").unlink(missing_ok=True)
        staged = self.directory / "arm.new"
        staged.write_text(point, encoding="utf-8")
        os.replace(staged, self.directory / "arm")  # atomic: a replica reads all of it or nothing

    def disarm(self) -> None:
        (self.directory / "arm").unlink(missing_ok=True)

    async def hit(self, timeout: float) -> int:
        """The pid of the replica parked at the armed point, once it has announced itself."""
        path = self.directory / "hit"
        deadline = time.monotonic() + timeout
        while True:
            text = path.read_text(encoding="utf-8") if path.exists() else ""
            if text.endswith("\n"):
                return int(text.split()[0])
            if time.monotonic() > deadline:
                raise AssertionError(f"no replica reached {(self.directory / 'arm').read_text()} in {timeout}s")
            await asyncio.sleep(0.05)


@dataclass
class Kill:
    point: str
    victim: str
    at: datetime
    #: (channel, job id) of the rows the victim held claimed when it died: its crash window.
    window: set[tuple[str, str]]
    #: The outbox ids of those rows.
    rows: list[int]
    #: When its failover was over (``failed_over``).
    over: datetime | None = None


class Db:
    """One connection to the bots' database for the test's frequent looks (a connection per look
    would fork a PostgreSQL backend each time and slow the very replicas being measured)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: Any = None

    async def rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        import asyncpg

        if self.conn is None:
            self.conn = await asyncpg.connect(self.url, timeout=5)
        return [dict(r) for r in await self.conn.fetch(sql, *args)]

    async def poll_lease_holder(self) -> str | None:
        rows = await self.rows("SELECT holder FROM leases WHERE name = 'poll:default' AND expires_at > now()")
        return str(rows[0]["holder"]) if rows else None

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


@contextlib.asynccontextmanager
async def database(url: str) -> AsyncIterator[Db]:
    db = Db(url)
    try:
        yield db
    finally:
        await db.close()


async def claimed_rows(db: Db, holder: str) -> list[int]:
    rows = await db.rows("SELECT id FROM outbox WHERE claimed_by = $1 AND state = 'pending'", holder)
    return [int(r["id"]) for r in rows]


async def failed_over(db: Db, kill: Kill, live: list[BotProcess], timeout: float) -> None:
    """Until the failover of ``kill`` is over: a live replica has ticked since (it holds the poll
    lease), and every row written up to that tick and every row the victim held is sent. The
    positive signal before the next kill: one landing inside a failover would add its delay to
    the alerts of the one before."""
    deadline = time.monotonic() + timeout
    ticked_at = None
    while True:
        ids = {bot.env["GES_BOT_REPLICA_ID"] for bot in live}
        if ticked_at is None:
            holder = await db.poll_lease_holder()
            state = await db.rows("SELECT max(last_success_at) AS at FROM poll_state")
            if holder in ids and state[0]["at"] is not None and state[0]["at"] > kill.at:
                ticked_at = state[0]["at"]
        if ticked_at is not None:
            unsent = await db.rows(
                "SELECT count(*) AS n FROM outbox WHERE state <> 'sent' AND (created_at <= $1 OR id = ANY($2::bigint[]))",
                ticked_at,
                kill.rows,
            )
            if unsent[0]["n"] == 0:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"no failover within {timeout}s after the kill at {kill.point} (ticked: {ticked_at})")
        await asyncio.sleep(0.2)


Times = dict[tuple[str, str], tuple[datetime, datetime]]


def delivery_times(workload: Workload, expected: set[tuple[str, str]], slack: SlackStandIn) -> Times:
    """(channel, job id) → when the job finished and when its alert first reached Slack."""
    first = arrivals(slack)
    out: Times = {}
    for channel, job_id in expected:
        finished, arrived = workload.finished_at.get(job_id), first.get((channel, job_id))
        if finished is not None and arrived is not None:
            out[(channel, job_id)] = (finished, arrived)
    return out


def undisturbed(times: Times, disturbances: list[tuple[datetime, datetime]]) -> float:
    """The longest an alert took from its job's end to Slack outside every disturbance (a kill
    until its failover was over, a stop until the process exited): what polling, routing and
    pacing cost in this run on this machine, the yardstick for the disturbed ones."""
    return max(
        (
            (arrived - finished).total_seconds()
            for finished, arrived in times.values()
            if not any(finished <= end and arrived >= start for start, end in disturbances)
        ),
        default=0.0,
    )


def worst_after(times: Times, at: datetime, slack: SlackStandIn, base: float) -> tuple[float, float, str]:
    """Of the alerts pending at ``at`` (the job had finished, the alert had not arrived), the one
    that came latest against its bound: ``base`` + the pacing of its channel after ``at`` (one
    ``channel_interval_s`` per message that channel received meanwhile, as Slack asks: what was
    held back goes out at once, one message per channel per interval). Returns how long after
    ``at`` it arrived, its bound, and which alert it was."""
    posts = [(str(c.answer.get("channel")), c.at) for c in slack.calls_to("chat.postMessage") if c.ok]
    worst, bound, which, excess = 0.0, base, "", float("-inf")
    for (channel, job_id), (finished, arrived) in times.items():
        if not finished <= at < arrived:
            continue
        waited = (arrived - at).total_seconds()
        paced = sum(1 for ch, t in posts if ch == channel and at < t < arrived)
        own = base + POLICY.channel_interval_s * paced
        if waited - own > excess:
            excess, worst, bound = waited - own, waited, own
            which = f"{channel}/{job_id} finished {finished:%H:%M:%S.%f}, {paced} message(s) before it"
    return round(worst, 2), round(bound, 2), which


@pytest.mark.timeout(300)
async def test_kill_9_on_both_sides_of_every_claim_loses_nothing_and_fails_over_in_seconds(stack: Stack) -> None:
    trap = Trap(stack.directory / "faults")
    live = list(
        await asyncio.gather(*(stack.start(f"k{i}", poll_interval=POLL_INTERVAL, **trap.env) for i in range(3)))
    )
    await wait_for_baseline(live[0])
    plan = subscription_plan()
    await subscribe(stack.slack, live, plan)
    kills: list[Kill] = []

    async def killer(db: Db) -> None:
        while not workload.finished:  # a kill must leave alerts pending to say anything
            await asyncio.sleep(0.1)
        await undisturbed_sample(min(workload.finished_at.values()))
        for n, point in enumerate(SCHEDULE):
            trap.arm(point)
            pid = await trap.hit(timeout=60)
            trap.disarm()
            victim = next(bot for bot in live if bot.alive and bot.pid == pid)
            at = datetime.now(UTC)
            victim.kill()
            await victim.wait()
            replica = victim.env["GES_BOT_REPLICA_ID"]
            window = await claimed_alerts(stack.database_url, replica)
            kill = Kill(point, replica, at, window, await claimed_rows(db, replica))
            kills.append(kill)
            live.remove(victim)
            replacement = stack.fleet.prepare(f"k{3 + n}", stack.env(poll_interval=POLL_INTERVAL, **trap.env))
            replacement.launch()
            live.append(replacement)
            await failed_over(db, kill, live, timeout=60)
            kill.over = datetime.now(UTC)
            await undisturbed_sample(kill.over)

    async def undisturbed_sample(since: datetime, size: int = 5) -> None:
        """Until ``size`` alerts of jobs that finished after ``since`` have arrived: between two
        kills, the run measures what delivery costs undisturbed (the yardstick of the bound)."""
        deadline = time.monotonic() + 60
        while sum(1 for (_, job_id) in arrivals(stack.slack) if workload.finished_at.get(job_id, since) > since) < size:
            assert time.monotonic() < deadline, f"fewer than {size} alerts within 60 s"
            await asyncio.sleep(0.2)

    started = time.monotonic()
    workload = Workload(stack.emu, random.Random(12))
    async with database(stack.database_url) as db:
        done = asyncio.create_task(killer(db))
        # The workload goes on until every kill has landed: each point needs work in flight.
        await workload.run(TRANSITIONS, per_wave=6, pause=0.5)
        while not done.done():
            workload.wave(0, 0, 2)
            await asyncio.wait({done}, timeout=0.5)
        await done
    for bot in live:
        await bot.wait_healthy(30)
    expected = expected_alerts(workload.finished, plan)
    result = await settle(stack.slack, expected, database_url=stack.database_url, timeout=120)
    elapsed = time.monotonic() - started
    await dump_outbox(stack.database_url, stack.directory)
    leftover = await db_rows(
        stack.database_url, "SELECT state, count(*) AS n FROM outbox WHERE state <> 'sent' GROUP BY state"
    )
    reposted = reposted_messages(stack.slack)
    per_kill = [sum(1 for ids in reposted if ids & kill.window) for kill in kills]
    times = delivery_times(workload, expected, stack.slack)
    usual = undisturbed(times, [(k.at, k.over or k.at) for k in kills])
    # A kill may add a lease (the victim's claims and poll lease run out), a poll interval (the
    # next tick takes the project) and a claim round (idle_poll_s) to what delivery takes anyway,
    # plus the pacing of what it held back.
    base = CLAIM_LEASE_S + POLL_INTERVAL + POLICY.idle_poll_s + usual
    delays = [worst_after(times, k.at, stack.slack, base) for k in kills]
    report(
        "failover",
        {
            "replicas": 3,
            "transitions": len(workload.finished),
            "claim_lease_s": CLAIM_LEASE_S,
            "kills": [k.point for k in kills],
            "alerts_in_crash_window": [len(k.window) for k in kills],
            "worst_delay_after_kill_s": [d for d, _, _ in delays],
            "bound_s": [b for _, b, _ in delays],
            "worst_alert": [w for _, _, w in delays],
            "undisturbed_worst_delay_s": round(usual, 2),
            "killed_at": [k.at.isoformat() for k in kills],
            "victims": [k.victim for k in kills],
            "expected": result.expected,
            "delivered": result.delivered,
            "duplicated": result.duplicate_count,
            "messages_posted_twice_per_kill": per_kill,
            "messages": result.messages,
            "seconds": round(elapsed, 1),
        },
        stack.directory,
        stack.slack,
    )
    assert [k.point for k in kills] == list(SCHEDULE)
    assert all(bot.alive for bot in live), stack.fleet.all_logs()[-5000:]
    assert not result.missing, f"{result.summary()}; missing: {result.missing[:5]}"
    assert not result.unexpected, f"{result.summary()}; {result.unexpected[:5]}"
    assert not leftover, leftover  # nothing pending, nothing dead
    # Every duplicate is a message a killed replica had claimed, posted at most twice …
    windows = set().union(*(k.window for k in kills))
    outside = sorted(set(result.duplicates) - windows)
    assert not outside, f"{result.summary()}; duplicates outside the crash windows: {outside[:5]}"
    assert all(n == 2 for n in result.duplicates.values()), result.duplicates
    # … at most max_concurrent_posts per kill; a kill before the post doubles nothing it held.
    for kill, twice in zip(kills, per_kill, strict=True):
        assert twice <= POLICY.max_concurrent_posts, (kill.point, per_kill)
    # A post that Slack took from a replica killed before it could record it: posted again.
    assert all(twice >= 1 for kill, twice in zip(kills, per_kill, strict=True) if kill.point == "delivery.posted")
    # Failover within the lease + one poll interval + pacing, after every kill.
    for kill, (waited, bound, _) in zip(kills, delays, strict=True):
        assert waited <= bound, (kill.point, delays)


@pytest.mark.timeout(240)
async def test_sigterm_mid_burst_hands_everything_back_at_once(stack: Stack) -> None:
    """The rolling update: the replica that polls and delivers is stopped with SIGTERM while a
    burst is being paced. With a claim lease of 60 s, any claim or poll lease it left behind
    would hold alerts back for a minute; none may wait more than a poll interval + pacing."""
    lease = 60
    bots = list(
        await asyncio.gather(
            *(stack.start(f"s{i}", poll_interval=POLL_INTERVAL, GES_BOT_CLAIM_LEASE=str(lease)) for i in range(2))
        )
    )
    await wait_for_baseline(bots[0])
    plan = subscription_plan()
    await subscribe(stack.slack, bots, plan)
    by_id = {bot.env["GES_BOT_REPLICA_ID"]: bot for bot in bots}
    workload = Workload(stack.emu, random.Random(21))
    stopped: list[tuple[BotProcess, datetime, datetime]] = []

    async def stopper(db: Db) -> None:
        # First a yardstick: alerts delivered while nothing is stopped.
        while len(arrivals(stack.slack)) < 20:
            await asyncio.sleep(0.2)
        # The positive signal: the poll lease holder has rows claimed (it is delivering).
        while True:
            holder = await db.poll_lease_holder()
            claims = await db.rows(
                "SELECT count(*) AS n FROM outbox WHERE claimed_by = $1 AND state = 'pending' AND claimed_until > now()",
                holder,
            )
            if holder in by_id and claims[0]["n"] > 0:
                break
            await asyncio.sleep(0.05)
        victim = by_id[holder]
        at = datetime.now(UTC)
        assert await victim.stop(timeout=30) == 0, victim.tail()
        stopped.append((victim, at, datetime.now(UTC)))

    async with database(stack.database_url) as db:
        await asyncio.wait_for(asyncio.gather(stopper(db), workload.run(200, per_wave=15, pause=0.5)), 120)
    [(victim, at, exited)] = stopped
    replica = victim.env["GES_BOT_REPLICA_ID"]
    survivor = next(bot for bot in bots if bot is not victim)
    expected = expected_alerts(workload.finished, plan)
    result = await settle(stack.slack, expected, database_url=stack.database_url, timeout=90)
    await dump_outbox(stack.database_url, stack.directory)
    held = await db_rows(
        stack.database_url,
        "SELECT count(*) AS n FROM outbox WHERE claimed_by = $1 AND state = 'pending'",
        replica,
    )
    times = delivery_times(workload, expected, stack.slack)
    usual = undisturbed(times, [(at, exited)])
    # The stop may cost what a tick and a claim round cost anyway (the survivor's next tick takes
    # the released project, its next claim the handed-back rows), never a lease.
    worst, bound, which = worst_after(times, at, stack.slack, usual + POLL_INTERVAL + POLICY.idle_poll_s)
    report(
        "sigterm",
        {
            "claim_lease_s": lease,
            "expected": result.expected,
            "delivered": result.delivered,
            "duplicated": result.duplicate_count,
            "worst_delay_after_stop_s": worst,
            "worst_alert": which,
            "undisturbed_worst_delay_s": round(usual, 2),
            "bound_s": round(bound, 2),
        },
        stack.directory,
        stack.slack,
    )
    assert survivor.alive, survivor.tail()
    assert "stopped" in victim.logs()
    assert held[0]["n"] == 0, "rows left claimed by the stopped replica"
    assert not result.missing, f"{result.summary()}; missing: {result.missing[:5]}"
    assert not result.duplicates, f"{result.summary()}; {list(result.duplicates.items())[:5]}"
    assert not result.unexpected, f"{result.summary()}; {result.unexpected[:5]}"
    assert worst <= bound < lease, (worst, bound)
