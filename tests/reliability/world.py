"""The reliability suite's world: GES emulator + Slack stand-in in the test process, real
``ges-bot run`` replicas as subprocesses, a workload of job transitions, and the ledger that
compares what Slack received with what it should have received.

Owns: the channel/graph/subscription layout, the workload (jobs created and finished through the
emulator's control API), the expected set of (channel, job) alerts derived from the transitions
and the subscriptions, and reading the stand-in's recorded ``chat.postMessage`` calls back into
(channel, job) pairs. It asserts nothing itself: the tests decide what must hold.

An alert is identified by the ``*Job id*`` field that :mod:`ges_bot.notify.render` puts in every
alert, overflow reply and recovery reply; grouping (one message per graph per tick) therefore
does not matter: each (channel, job) must be seen exactly once, whichever message carried it.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from ges_bot.standin.slack import DEFAULT_BOT_TOKEN, Channel, SlackStandIn, signed_command_request
from tests.support.emulator import EmulatorHandle
from tests.support.processes import BotFleet, BotProcess, base_env

SIGNING_SECRET = "reliability-signing-secret-0000"
GRAPHS: tuple[str, ...] = tuple(f"g{i:02d}" for i in range(20))
CHANNELS: tuple[str, ...] = tuple(f"C0REL{i:02d}" for i in range(20))
JOB_NAMES: tuple[str, ...] = ("ImportGraph", "ExportGraph", "BuildIndex")
#: GES status → the subscription word that asks for it.
_WORD = {"failed": "failed", "partiallyFailed": "partial", "success": "success"}
_JOB_ID_FIELD = re.compile(r"\*Job id\*\n`([^`]+)`")
#: The replicas' claim lease (GES_BOT_CLAIM_LEASE): short, so that failover happens within a test.
CLAIM_LEASE_S = 8.0


@dataclass(frozen=True)
class Sub:
    channel: str
    graph: str
    #: Words as typed after the pattern; empty = the default (failed, partial).
    words: tuple[str, ...] = ()

    @property
    def statuses(self) -> frozenset[str]:
        if "all" in self.words:
            return frozenset({"failed", "partial", "success"})
        return frozenset(self.words or ("failed", "partial"))

    @property
    def command(self) -> str:
        return " ".join(["subscribe", self.graph, *self.words])


def subscription_plan(channels: Iterable[str] = CHANNELS, graphs: Iterable[str] = GRAPHS) -> list[Sub]:
    """Channel i hears failures of graph i and everything of graph i+7: every graph has a
    failures-only channel and an everything channel, every channel two graphs."""
    chans, grs = list(channels), list(graphs)
    plan = []
    for i, channel in enumerate(chans):
        plan.append(Sub(channel, grs[i % len(grs)]))
        plan.append(Sub(channel, grs[(i + 7) % len(grs)], ("all",)))
    return plan


def new_stand_in(channels: Iterable[str] = CHANNELS) -> SlackStandIn:
    return SlackStandIn(channels=[Channel(c, c.lower()) for c in channels])


def bot_env(
    emu: EmulatorHandle,
    slack: SlackStandIn,
    database_url: str,
    *,
    auth: str = "aksk",
    poll_interval: float = 0.5,
    **extra: str,
) -> dict[str, str]:
    """The environment of one replica: HTTP mode (signed slash commands), short timeouts and
    leases so that failover and retries happen within a test's time."""
    env = base_env(
        GES_ENDPOINT=emu.url,
        GES_PROJECT_ID=emu.project_id,
        GES_BOT_DATABASE_URL=database_url,
        GES_BOT_POLL_INTERVAL=str(poll_interval),
        GES_BOT_GES_TIMEOUT="2",
        GES_BOT_GES_RETRIES="2",
        GES_BOT_SLACK_TIMEOUT="2",
        GES_BOT_CLAIM_LEASE=str(CLAIM_LEASE_S),
        SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.api_url,
        GES_BOT_LOG_LEVEL="INFO",
    )
    if auth == "aksk":
        env.update(HUAWEICLOUD_SDK_AK=emu.ak, HUAWEICLOUD_SDK_SK=emu.sk)
    elif auth == "password":
        env.update(
            GES_IAM_ENDPOINT=emu.url,
            GES_IAM_DOMAIN=emu.iam_domain,
            GES_IAM_USER=emu.iam_user,
            GES_IAM_PASSWORD=emu.iam_password,
        )
    else:
        env.update(GES_TOKEN=emu.token)
    env.update(extra)
    return env


async def slash_command(
    slack: SlackStandIn,
    bot: BotProcess,
    text: str,
    *,
    channel: str = "C0REL00",
    user: str = "U0ALICE",
    secret: str = SIGNING_SECRET,
    timeout: float = 15.0,
) -> list[dict[str, Any]]:
    """POST a signed ``/gesjobs`` to one replica and return what it answered on the response URL."""
    rid = f"r{time.monotonic_ns()}"
    body, headers = signed_command_request(
        secret,
        text=text,
        channel_id=channel,
        channel_name=channel.lower(),
        user_id=user,
        response_url=slack.response_url(rid),
    )
    async with httpx.AsyncClient(timeout=10.0) as client:
        response = await client.post(f"{bot.url}/slack/events", content=body, headers=headers)
    assert response.status_code == 200, f"{bot.name} answered {response.status_code}: {response.text}"
    return await slack.wait_for(lambda: slack.responses(rid), timeout)


async def subscribe(slack: SlackStandIn, bots: list[BotProcess], plan: list[Sub]) -> None:
    """Create every subscription with ``/gesjobs subscribe``, round robin over the replicas,
    a few at a time (as people in several channels would)."""

    async def one(i: int, sub: Sub) -> None:
        answer = await slash_command(slack, bots[i % len(bots)], sub.command, channel=sub.channel)
        assert "Subscribed" in answer[0]["text"], answer

    for start in range(0, len(plan), 8):
        await asyncio.gather(*(one(start + i, sub) for i, sub in enumerate(plan[start : start + 8])))


async def wait_for_baseline(bot: BotProcess, timeout: float = 30.0) -> None:
    """Until some replica has finished the project's first (silent, baseline) tick."""
    deadline = time.monotonic() + timeout
    while True:
        _, health = await bot.health()
        if health.get("projects") and all(p.get("last_success_at") for p in health["projects"]):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"no successful poll within {timeout}s: {health}\n{bot.tail()}")
        await asyncio.sleep(0.2)


# --------------------------------------------------------------------------------------------
# The workload
# --------------------------------------------------------------------------------------------


@dataclass
class PlannedJob:
    job_id: str
    graph: str
    job_name: str
    final: str


@dataclass
class Workload:
    """Job transitions made through the emulator. A *transition* here is a job reaching a terminal
    status (the only kind that alerts); jobs also go pending → running on the way (recorded by the
    bot, never alerted). Some jobs start and finish between two polls (first seen terminal)."""

    emu: EmulatorHandle
    rng: random.Random
    graphs: tuple[str, ...] = GRAPHS
    finished: dict[str, PlannedJob] = field(default_factory=dict)
    #: When each job reached its terminal status (wall clock, like the stand-in's call times).
    finished_at: dict[str, datetime] = field(default_factory=dict)
    active: list[PlannedJob] = field(default_factory=list)
    pending: list[PlannedJob] = field(default_factory=list)
    waves: int = 0

    def _final(self) -> str:
        roll = self.rng.random()
        return "failed" if roll < 0.35 else "partiallyFailed" if roll < 0.5 else "success"

    def _plan(self) -> PlannedJob:
        return PlannedJob("", self.rng.choice(self.graphs), self.rng.choice(JOB_NAMES), self._final())

    # The emulator runs in this process and loop: changing its state directly makes a wave of
    # transitions one instant (as a busy job center would), where 25 control requests would not.
    def _add(self, jobs: list[PlannedJob], status: str | None) -> None:
        if not jobs:
            return
        bodies = [
            {"status": status or j.final, "job_name": j.job_name, "related_graph": j.graph, "job_type": "1"}
            for j in jobs
        ]
        added = self.emu.state.add_many(bodies)
        for job, emu_job in zip(jobs, added, strict=True):
            job.job_id = emu_job.job_id

    def _patch(self, job: PlannedJob, status: str) -> None:
        self.emu.state.patch(job.job_id, {"status": status})

    def wave(self, finish: int, start: int, direct: int) -> int:
        """Finish up to ``finish`` running jobs, move pending ones to running, start ``start``
        new (pending) jobs and add ``direct`` jobs already finished. Returns transitions made."""
        done = self.active[:finish]
        self.active = self.active[finish:]
        now = datetime.now(UTC)
        for job in done:
            self._patch(job, job.final)
            self.finished[job.job_id] = job
            self.finished_at[job.job_id] = now
        for job in self.pending:
            self._patch(job, "running")
        self.active.extend(self.pending)
        self.pending = [self._plan() for _ in range(start)]
        self._add(self.pending, "pending")
        instant = [self._plan() for _ in range(direct)]
        self._add(instant, None)
        for job in instant:
            self.finished[job.job_id] = job
            self.finished_at[job.job_id] = now
        self.waves += 1
        return len(done) + len(instant)

    async def run(self, total: int, *, per_wave: int = 25, pause: float = 0.4) -> None:
        """Make exactly ``total`` transitions, about ``per_wave`` at a time, ``pause`` seconds apart."""
        made = 0
        # Prime the pipeline: a job needs two waves (pending → running) before it can finish.
        for _ in range(2):
            self.wave(0, min(per_wave, total), 0)
            await asyncio.sleep(pause)
        while made < total:
            left = total - made
            direct = min(left, max(1, per_wave // 5))
            finish = min(per_wave - direct, len(self.active), left - direct)
            in_pipeline = len(self.active) - finish + len(self.pending)
            start = max(0, min(per_wave, left - direct - finish - in_pipeline))
            made += self.wave(finish, start, direct)
            await asyncio.sleep(pause)
        assert made == total, (made, total)


# --------------------------------------------------------------------------------------------
# The ledger
# --------------------------------------------------------------------------------------------


def expected_alerts(jobs: Mapping[str, PlannedJob], plan: Iterable[Sub]) -> set[tuple[str, str]]:
    """(channel, job id) for every finished job and every channel whose subscriptions ask for it."""
    wanted: set[tuple[str, str]] = set()
    subs = list(plan)
    for job in jobs.values():
        for sub in subs:
            if sub.graph == job.graph and _WORD[job.final] in sub.statuses:
                wanted.add((sub.channel, job.job_id))
    return wanted


def _texts(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                yield value
            else:
                yield from _texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _texts(item)


def arrivals(slack: SlackStandIn) -> dict[tuple[str, str], datetime]:
    """When each (channel, job id) first appeared in a ``chat.postMessage`` Slack accepted."""
    first: dict[tuple[str, str], datetime] = {}
    for call in slack.calls:
        if call.method != "chat.postMessage" or not call.ok:
            continue
        channel = str(call.answer.get("channel") or call.params.get("channel"))
        for text in _texts(call.params.get("blocks") or []):
            for job_id in _JOB_ID_FIELD.findall(text):
                first.setdefault((channel, job_id), call.at)
    return first


def delivered_alerts(slack: SlackStandIn) -> Counter[tuple[str, str]]:
    """How many times each (channel, job id) appeared in a ``chat.postMessage`` Slack accepted
    (alerts, overflow replies and recovery replies alike)."""
    seen: Counter[tuple[str, str]] = Counter()
    for message in slack.messages():
        channel = str(message["channel"])
        ids = {m for text in _texts(message.get("blocks") or []) for m in _JOB_ID_FIELD.findall(text)}
        for job_id in ids:
            seen[(channel, job_id)] += 1
    return seen


@dataclass(frozen=True)
class Tally:
    expected: int
    delivered: int
    missing: tuple[tuple[str, str], ...]
    duplicates: dict[tuple[str, str], int]
    unexpected: tuple[tuple[str, str], ...]
    messages: int

    @property
    def duplicate_count(self) -> int:
        return sum(n - 1 for n in self.duplicates.values())

    def summary(self) -> str:
        return (
            f"expected {self.expected} alerts, delivered {self.delivered} distinct in {self.messages} messages, "
            f"missing {len(self.missing)}, duplicated {self.duplicate_count}, unexpected {len(self.unexpected)}"
        )


def tally(slack: SlackStandIn, expected: set[tuple[str, str]]) -> Tally:
    seen = delivered_alerts(slack)
    return Tally(
        expected=len(expected),
        delivered=len(set(seen) & expected),
        missing=tuple(sorted(expected - set(seen))),
        duplicates={k: n for k, n in seen.items() if n > 1},
        unexpected=tuple(sorted(set(seen) - expected)),
        messages=len(slack.messages()),
    )


async def settle(
    slack: SlackStandIn,
    expected: set[tuple[str, str]],
    *,
    database_url: str,
    timeout: float,
    quiet: float = 2.0,
) -> Tally:
    """Wait until every expected alert has arrived and no outbox row is pending any more — or
    until nothing is left to send (no pending row, no new Slack call for ``quiet`` seconds), or
    ``timeout``. No pending row is the positive signal that nothing more will be posted: a late
    duplicate (a re-post after a lost claim) comes from a pending row, so it is counted."""
    deadline = time.monotonic() + timeout
    last_count, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = len(slack.calls)
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        pending = (await db_rows(database_url, "SELECT count(*) AS n FROM outbox WHERE state = 'pending'"))[0]["n"]
        if pending == 0 and (expected <= set(delivered_alerts(slack)) or time.monotonic() - last_change > quiet):
            break
        await asyncio.sleep(0.25)
    return tally(slack, expected)


def report(
    name: str, figures: Mapping[str, Any], directory: Path | None = None, slack: SlackStandIn | None = None
) -> None:
    """Print the figures (shown with ``pytest -s`` / ``-rA``) and keep them as JSON for the issue note."""
    line = json.dumps({"test": name, **figures}, sort_keys=True)
    print(f"\nRELIABILITY {line}")
    if directory is not None:
        (directory / "figures.json").write_text(line + "\n", encoding="utf-8")
        if slack is not None:
            dump_calls(slack, directory)


async def wait_outbox_drained(bot: BotProcess, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        _, health = await bot.health()
        if health.get("outbox_pending") == 0:
            return health
        if time.monotonic() > deadline:
            return health
        await asyncio.sleep(0.25)


def fleet_logs(fleet: BotFleet) -> str:
    return fleet.all_logs()


async def db_rows(database_url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Rows of a query on the bots' database (to see who holds a lease or a claim right now)."""
    import asyncpg

    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


async def poll_lease_holder(database_url: str) -> str | None:
    rows = await db_rows(database_url, "SELECT holder FROM leases WHERE name = 'poll:default' AND expires_at > now()")
    return str(rows[0]["holder"]) if rows else None


async def delivering_replicas(database_url: str) -> list[str]:
    """Replicas holding live claims on pending outbox rows (busy posting), busiest first."""
    rows = await db_rows(
        database_url,
        "SELECT claimed_by, count(*) AS n FROM outbox WHERE state = 'pending' AND claimed_until > now() "
        "AND claimed_by IS NOT NULL GROUP BY claimed_by ORDER BY n DESC",
    )
    return [str(r["claimed_by"]) for r in rows]


def dump_calls(slack: SlackStandIn, directory: Path) -> Path:
    """Every Web API call the stand-in answered, with the job ids each message carried, as JSON
    lines next to the bots' logs (for the post-mortem of a failure)."""
    path = directory / "slack-calls.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for call in slack.calls:
            ids = sorted({m for text in _texts(call.params.get("blocks") or []) for m in _JOB_ID_FIELD.findall(text)})
            row = {
                "at": call.at.isoformat(),
                "method": call.method,
                "status": call.http_status,
                "ok": call.ok,
                "channel": call.answer.get("channel", call.params.get("channel")),
                "ts": call.answer.get("ts"),
                "thread_ts": call.params.get("thread_ts"),
                "jobs": ids,
                "text": str(call.params.get("text", ""))[:200],
            }
            out.write(json.dumps(row) + "\n")
    return path


def _job_ids(events: Any) -> tuple[str, ...]:
    items = json.loads(events) if isinstance(events, str) else events
    return tuple(str(e["job"]["job_id"]) for e in items or ())


async def claimed_alerts(database_url: str, holder: str) -> set[tuple[str, str]]:
    """(channel, job id) of the pending outbox rows ``holder`` has claimed: right after ``holder``
    died, exactly the alerts inside the crash window (posted perhaps, certainly not marked sent)."""
    rows = await db_rows(
        database_url, "SELECT channel, events FROM outbox WHERE claimed_by = $1 AND state = 'pending'", holder
    )
    return {(str(r["channel"]), job_id) for r in rows for job_id in _job_ids(r["events"])}


async def dump_outbox(database_url: str, directory: Path) -> Path:
    """The outbox as JSON lines (state, attempts, claims, errors, job ids), for post-mortems."""
    rows = await db_rows(
        database_url,
        "SELECT id, channel, graph, state, attempts, claimed_by, claimed_until, next_attempt_at, ts, last_error, "
        "created_at, events FROM outbox ORDER BY id",
    )
    path = directory / "outbox.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            row["jobs"] = _job_ids(row.pop("events"))
            out.write(json.dumps(row, default=str) + "\n")
    return path


async def overflow_alerts(database_url: str, inline: int) -> set[tuple[str, str]]:
    """(channel, job id) of the events beyond the first ``inline`` of each *sent* outbox row: those
    the alert itself only counts ("…and 3 more") and details in thread replies."""
    rows = await db_rows(database_url, "SELECT channel, events FROM outbox WHERE state = 'sent'")
    return {(str(r["channel"]), job_id) for r in rows for job_id in _job_ids(r["events"])[inline:]}
