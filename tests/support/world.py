"""A whole alert pipeline in one test: GES emulator → poller → store → delivery worker → Slack stand-in.

Everything is real and talks real HTTP on loopback: the emulator (``tests.support.emulator``), a
``JobCenterClient`` with AK/SK, ``SqlStore`` on the URL you give (SQLite or PostgreSQL), the
``Poller``, the ``DeliveryWorker`` with slack_sdk's ``AsyncWebClient`` (``WebApiGateway``) and
the ``SlackStandIn``. One clock drives it all: the emulator's (real time plus an offset), so
``await w.advance(600)`` makes ten minutes pass for GES jobs, poll times, outbox due times and
delivery pauses at once. Pacing and ``Retry-After`` pauses also run on real time (they are about
Slack's clock), so keep ``channel_interval_s`` small unless a test measures it.

Usage::

    async with world(db_url) as w:                       # one silent baseline tick already done
        await w.subscribe("C0ALERTS", "movies")
        await w.job("j-1", "failed", fail_reason="OBS path not found")
        await w.settle()                                 # tick, then deliver everything due
        [message] = w.slack.messages("C0ALERTS")

    async with world(db_url) as w, w.running():          # the worker's own loop in the background
        ...

Channels: ``C0ALERTS`` (#alerts), ``C0TEAM`` (#team), ``C0OPS`` (#ops), ``C0OLD`` (#old, archived),
``C0SECRET`` (#secret, private, bot not in it) — or pass ``channels=``. Users ``U0ALICE``, ``U0BOB``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ges_bot.config import ProjectSettings, kinds_from_words
from ges_bot.domain import Mute, Subscription
from ges_bot.jobcenter.client import JobCenterClient
from ges_bot.notify.delivery import DeliveryPolicy, DeliveryWorker
from ges_bot.notify.slack import WebApiGateway
from ges_bot.standin.slack import DEFAULT_BOT_TOKEN, Channel, SlackStandIn, User
from ges_bot.store import SqlStore, open_store
from ges_bot.store.api import Health
from ges_bot.watch.poller import Poller, TickReport
from tests.support.asgi import serve
from tests.support.emulator import EmulatorHandle, run_emulator

__all__ = ["ALIAS", "DEFAULT_CHANNELS", "FAST_POLICY", "T0", "World", "wire", "world"]

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ALIAS = "prod"

DEFAULT_CHANNELS: tuple[Channel, ...] = (
    Channel("C0ALERTS", "alerts"),
    Channel("C0TEAM", "team"),
    Channel("C0OPS", "ops"),
    Channel("C0OLD", "old", is_archived=True),
    Channel("C0SECRET", "secret", is_private=True, is_member=False),
)
DEFAULT_USERS: tuple[User, ...] = (
    User("U0ALICE", "alice", tz="Europe/Berlin"),
    User("U0BOB", "bob", tz="America/New_York"),
)

#: Delivery fast enough for tests: 20 ms between posts to a channel, backoff 1 s → 30 s (on the
#: world's clock, which tests advance), no idle waits to speak of, and lanes long enough that no
#: row is sent back for pacing (``World.deliver`` would stop at such a row; ``running`` would not).
FAST_POLICY = DeliveryPolicy(
    channel_interval_s=0.02,
    channel_queue=100,
    backoff_base_s=1.0,
    backoff_cap_s=30.0,
    idle_poll_s=0.05,
    installation_pause_s=60.0,
    inline_retry_cap_s=0.05,
)


def wire(t: datetime) -> str:
    """A time as the job center writes it (UTC, no zone)."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass
class World:
    """The running pipeline and helpers to drive it. Attributes are the real parts."""

    emu: EmulatorHandle
    store: SqlStore
    slack: SlackStandIn
    gateway: WebApiGateway
    client: JobCenterClient
    poller: Poller
    worker: DeliveryWorker
    project: ProjectSettings
    policy: DeliveryPolicy
    notes: dict[str, str] = field(default_factory=dict)
    _extra_gateways: list[WebApiGateway] = field(default_factory=list)

    # --- time ---------------------------------------------------------------------------------
    def now(self) -> datetime:
        """The world's clock (the emulator's): GES, poller and outbox all read it."""
        return self.emu.state.now()

    async def advance(self, seconds: float) -> datetime:
        """Let ``seconds`` pass for everything that reads the world's clock."""
        return self.emu.state.clock.advance(seconds)

    # --- GES ----------------------------------------------------------------------------------
    async def job(self, job_id: str, status: str = "running", **fields: Any) -> dict[str, Any]:
        """Add a job (wire fields); defaults: ``job_name`` ImportGraph, graph ``movies``, begun a
        minute ago, and for a terminal status ended now."""
        now = self.now()
        fields.setdefault("job_name", "ImportGraph")
        fields.setdefault("related_graph", "movies")
        fields.setdefault("begin_time", wire(now - timedelta(seconds=60)))
        if status in ("success", "failed", "partiallyFailed"):
            fields.setdefault("end_time", wire(now))
        return await self.emu.add_job(job_id=job_id, status=status, **fields)

    async def jobs(self, jobs: Sequence[dict[str, Any]]) -> list[str]:
        """Add many jobs at once (wire fields, same defaults as :meth:`job`)."""
        now = self.now()
        prepared = []
        for job in jobs:
            j = dict(job)
            j.setdefault("job_name", "ImportGraph")
            j.setdefault("related_graph", "movies")
            j.setdefault("begin_time", wire(now - timedelta(seconds=60)))
            if j.get("status") in ("success", "failed", "partiallyFailed"):
                j.setdefault("end_time", wire(now))
            prepared.append(j)
        return await self.emu.add_jobs(prepared)

    async def finish(self, job_id: str, status: str, **fields: Any) -> dict[str, Any]:
        """Move a job to ``status`` (a terminal one sets its end time to now)."""
        return await self.emu.patch_job(job_id, status=status, **fields)

    # --- subscriptions ------------------------------------------------------------------------
    async def subscribe(
        self,
        channel: str,
        graph: str = "*",
        statuses: Iterable[str] = ("failed", "partial"),
        *,
        created_by: str | None = "U0ALICE",
        project: str | None = None,
        job_names: Iterable[str] = (),
    ) -> Subscription:
        """A subscription made from Slack (stored), as ``/gesjobs subscribe`` makes it."""
        return await self.store.add_subscription(
            Subscription(
                id=0,
                channel=channel,
                graph_pattern=graph,
                kinds=kinds_from_words(list(statuses)),
                project=project,
                job_names=frozenset(job_names),
                created_by=created_by,
                created_at=self.now(),
            )
        )

    def subscribe_in_config(
        self, channel: str, graph: str = "*", statuses: Iterable[str] = ("failed", "partial")
    ) -> Subscription:
        """A ``[[subscriptions]]`` entry of GES_BOT_CONFIG (not stored; negative id; no creator)."""
        sub = Subscription(
            id=-(len(self.poller.config_subscriptions) + 1),
            channel=channel,
            graph_pattern=graph,
            kinds=kinds_from_words(list(statuses)),
            source="config",
            created_by="config",
        )
        self.poller.config_subscriptions = (*self.poller.config_subscriptions, sub)
        return sub

    async def mute(self, channel: str, graph: str, seconds: float = 3600, created_by: str = "U0BOB") -> Mute:
        now = self.now()
        return await self.store.add_mute(
            Mute(
                id=0,
                channel=channel,
                graph_pattern=graph,
                until=now + timedelta(seconds=seconds),
                created_by=created_by,
                created_at=now,
            )
        )

    # --- the pipeline -------------------------------------------------------------------------
    async def tick(self) -> TickReport:
        """One poll of the emulator (fetch → diff → route → commit, outbox rows included)."""
        return await self.poller.tick()

    async def deliver(self) -> int:
        """Deliver every row due now (the worker stepped with ``run_once``); returns rows claimed."""
        return await self.worker.deliver_due()

    async def settle(self) -> TickReport:
        """A tick, then delivery of everything due."""
        report = await self.tick()
        await self.deliver()
        return report

    @contextlib.asynccontextmanager
    async def running(self, worker: DeliveryWorker | None = None) -> AsyncIterator[DeliveryWorker]:
        """Run the worker's own loop (``run``) in the background for the block."""
        chosen = worker or self.worker
        stop = asyncio.Event()
        task = asyncio.create_task(chosen.run(stop), name="world-delivery")
        try:
            yield chosen
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)

    def new_worker(self, worker_id: str, *, policy: DeliveryPolicy | None = None, seed: int = 7) -> DeliveryWorker:
        """Another worker on the same store (another process, or this one after a restart)."""
        gateway = WebApiGateway(DEFAULT_BOT_TOKEN, base_url=self.slack.api_url, timeout=self.gateway.timeout)
        self._extra_gateways.append(gateway)
        return DeliveryWorker(
            self.store,
            gateway,
            {self.project.alias: self.project.info()},
            worker_id=worker_id,
            clock=self.now,
            policy=policy or self.policy,
            rng=random.Random(seed),
            notes=self.notes,
        )

    async def health(self) -> Health:
        return await self.store.health(self.now())

    async def outbox_states(self, ids: Iterable[int]) -> dict[int, str]:
        out = {}
        for i in ids:
            item = await self.store.outbox_item(i)
            assert item is not None, f"outbox row {i} does not exist"
            out[i] = item.state
        return out

    # --- what Slack received --------------------------------------------------------------------
    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Successful chat.postMessage payloads (``channel`` resolved, ``ts`` added), in order."""
        return self.slack.messages(channel)

    def top_level(self, channel: str) -> list[dict[str, Any]]:
        """The channel's messages that are not thread replies."""
        return [m for m in self.slack.messages(channel) if not m.get("thread_ts")]

    def payloads(self) -> list[dict[str, Any]]:
        """Every message payload Slack accepted (posts and updates), for limit and escaping checks."""
        return [*self.slack.messages(), *self.slack.updates()]


@contextlib.asynccontextmanager
async def world(
    db_url: str,
    *,
    policy: DeliveryPolicy = FAST_POLICY,
    channels: Sequence[Channel] = DEFAULT_CHANNELS,
    users: Sequence[User] = DEFAULT_USERS,
    start: datetime = T0,
    baseline: bool = True,
    slack_timeout: float = 5.0,
    seed: int = 7,
    page_size: int = 100,
    **emulator: Any,
) -> AsyncIterator[World]:
    """Stand the pipeline up (and, with ``baseline``, run the silent first tick); tear it down after."""
    slack = SlackStandIn(channels=list(channels), users=list(users))
    async with run_emulator(**emulator) as emu, serve(slack.app) as slack_url:
        slack.base_url = slack_url
        await emu.set_time(start)
        project = emu.project_settings(alias=ALIAS)
        store = await open_store(db_url)
        client = JobCenterClient(
            project, page_size=page_size, max_retries=0, timeout=5, backoff_base=0.01, backoff_cap=0.02
        )
        gateway = WebApiGateway(DEFAULT_BOT_TOKEN, base_url=slack.api_url, timeout=slack_timeout)
        notes: dict[str, str] = {}
        poller = Poller(
            project,
            client,
            store,
            clock=emu.state.now,
            replica="world",
            lease_ttl=timedelta(minutes=5),
        )
        worker = DeliveryWorker(
            store,
            gateway,
            {project.alias: project.info()},
            worker_id="world",
            clock=emu.state.now,
            policy=policy,
            rng=random.Random(seed),
            notes=notes,
        )
        w = World(
            emu=emu,
            store=store,
            slack=slack,
            gateway=gateway,
            client=client,
            poller=poller,
            worker=worker,
            project=project,
            policy=policy,
            notes=notes,
        )
        try:
            if baseline:
                await w.tick()
                await w.advance(60)
            yield w
        finally:
            for g in (gateway, *w._extra_gateways):
                await g.aclose()
            await client.aclose()
            await store.close()
