"""Telling people when the bot is blind: the ops channel, the log and the notes that health shows.

This module owns the dead man's switch's *shell*: every ``check_every_s`` (and after every poll
tick) it reads the store's figures, asks ``watch.blindness.assess`` (pure) which problems are open,
and then

- logs each problem once when it opens (ERROR) and when it ends (INFO);
- keeps ``Services.notes`` (shown by ``/gesjobs status``, the Home tab and ``/healthz``) in step,
  under ``ops:<kind>:<subject>`` keys — the same sentence as the log;
- sets the health gauges of ``ges_bot.metrics`` (seconds since each project's last good poll,
  blind projects, open incidents by kind);
- with an ops channel (``GES_BOT_OPS_CHANNEL``), has ``notify.ops_channel`` post one message per
  problem there — the
  project, the cause in a sentence, how to fix it, since when — updates it (``chat.update``) when
  its cause changes (at most once per ``blind_after``), and when it ends updates it to resolved
  and replies in its thread with what the catch-up found.
- with ops sinks (``GES_BOT_OPS_SINKS`` / ``[ops] sinks``), has ``notify.ops_channel`` tell those
  group bots of each problem's start and end through the sink outbox — with or without an ops
  channel, and on a bot without Slack.

Every replica assesses (the figures come from the shared store, so they agree); only the holder of
the store lease ``ops`` posts, and the ``ops_incidents`` table remembers each message's ``ts``, so
several replicas post an incident once and a restart updates it instead of posting it again. The
one duplicate window is the delivery worker's: a crash after Slack accepted a post and before its
``ts`` was recorded posts that message again.

Ops messages' text is built only with ``notify.mrkdwn`` (causes quote GES and Slack errors); the
messages and the posting are ``notify.ops_channel``'s, re-exported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from ges_bot import metrics
from ges_bot.config import Config
from ges_bot.errors import GesBotError, StoreError
from ges_bot.notify.ops_channel import NOTE_CHANNEL, OPS_LEASE, OpsChannel, render_open, render_reply, render_resolved
from ges_bot.notify.slack import SlackGateway
from ges_bot.store.api import Health, Store
from ges_bot.store.incidents import IncidentRecord, IncidentState, IncidentStore
from ges_bot.store.sql import SqlStore
from ges_bot.watch.blindness import Finding, IncidentKind, Observation, PriorIncident, assess

__all__ = ["NOTE_PREFIX", "OPS_LEASE", "OpsWatch", "ops_watch_for", "render_open", "render_reply", "render_resolved"]

log = logging.getLogger(__name__)

NOTE_PREFIX = "ops:"
#: Kinds whose problem ``Services.notes`` does not show already (the delivery worker notes a
#: refused token and broken config-file channels; the store's broken subscriptions are listed).
_NOTED_KINDS = frozenset({IncidentKind.BLIND, IncidentKind.BACKLOG, IncidentKind.DEAD})


class OpsWatch:
    """Assess the bot's health and tell people; one per runtime. ``run(stop)`` loops until ``stop``."""

    def __init__(
        self,
        store: Store,
        *,
        projects: Mapping[str, str],
        blind_after: timedelta,
        clock: Callable[[], datetime],
        replica: str,
        notes: MutableMapping[str, str],
        check_every_s: float,
        channel: str | None = None,
        gateway: SlackGateway | None = None,
        incidents: IncidentStore | None = None,
        lease_ttl_s: float = 60.0,
        installation_error: Callable[[], str | None] = lambda: None,
        broken_config_channels: Callable[[], Mapping[str, str]] = dict,
        broken_sinks: Callable[[], Mapping[str, str]] = dict,
        sinks: Sequence[str] = (),
        locale: str = "en",
    ) -> None:
        self.store = store
        self.projects = dict(projects)
        self.blind_after = blind_after
        self.clock = clock
        self.replica = replica
        self.notes = notes
        self.check_every_s = check_every_s
        self.channel = channel if gateway is not None and incidents is not None else None
        self.gateway = gateway
        self.incidents = incidents
        self.lease_ttl_s = lease_ttl_s
        self.installation_error = installation_error
        self.broken_config_channels = broken_config_channels
        self.broken_sinks = broken_sinks
        self.started_at = clock()
        #: The problems open at the last round (``/healthz`` shows them).
        self.findings: list[Finding] = []
        self._memory: dict[tuple[str, str], PriorIncident] = {}
        #: ``[ops] sinks``: group bots told of each incident's start and end (through the outbox).
        self.sinks = tuple(sinks) if incidents is not None else ()
        self._channel = (
            OpsChannel(
                store,
                incidents,
                gateway,
                channel=self.channel,
                replica=replica,
                lease_ttl_s=lease_ttl_s,
                blind_after=blind_after,
                notes=notes,
                sinks=self.sinks,
                locale=locale,
            )
            if incidents is not None and (self.channel is not None or self.sinks)
            else None
        )
        self._store_down = False
        self._wake = asyncio.Event()
        #: Set after each round; tests wait on it rather than on time.
        self.rounds = 0
        self._round_done = asyncio.Condition()

    # --- the loop --------------------------------------------------------------------------------

    def wake(self) -> None:
        """Check now (after a poll tick) instead of at the next interval."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.check_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ops: health check failed unexpectedly; trying again at the next interval")
            waiter = asyncio.ensure_future(self._wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({waiter, stopper}, timeout=self.check_every_s, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                stopper.cancel()
            self._wake.clear()
        if self._channel is not None:
            with contextlib.suppress(GesBotError):
                await self.store.release_lease(OPS_LEASE, self.replica)

    async def wait_rounds(self, n: int = 1) -> None:
        """Return once ``n`` more rounds have completed."""
        target = self.rounds + n
        async with self._round_done:
            await self._round_done.wait_for(lambda: self.rounds >= target)

    def health(self) -> list[dict[str, Any]]:
        """The open problems for ``/healthz``: the same sentences as the log and the ops channel."""
        return [
            {
                "kind": f.kind.value,
                "subject": f.subject,
                "since": f.since.isoformat(),
                "cause": f.cause,
                "fix": f.fix,
            }
            for f in self.findings
        ]

    # --- one round -------------------------------------------------------------------------------

    async def check_once(self) -> list[Finding]:
        now = self.clock()
        try:
            health = await self.store.health(now)
            records = await self.incidents.all() if self._channel is not None and self.incidents else None
        except StoreError as exc:
            # The database is down: /healthz says so itself; nothing here can be decided. Said
            # once per outage, not at every check.
            if not self._store_down:
                log.warning("ops: cannot read the bot's health from the database: %s", exc)
            self._store_down = True
            await self._done()
            return self.findings
        if self._store_down:
            log.info("ops: the database answers again")
            self._store_down = False
        prior = self._prior(records)
        findings = assess(self._observe(now, health), prior)
        self._tell(findings, now, health)
        if self._channel is not None and records is not None:
            self._channel.post_error = None
            try:
                await self._channel.sync(findings, records, now)
            except StoreError as exc:
                log.warning("ops: could not record the ops channel's messages: %s", exc)
            else:
                if self._channel.post_error is not None:
                    self.notes[NOTE_CHANNEL] = self._channel.post_error
                else:
                    self.notes.pop(NOTE_CHANNEL, None)
        await self._done()
        return findings

    async def _done(self) -> None:
        async with self._round_done:
            self.rounds += 1
            self._round_done.notify_all()

    def _observe(self, now: datetime, health: Health) -> Observation:
        broken = {s.channel: s.broken or "broken" for s in health.broken_subscriptions}
        broken.update(self.broken_config_channels())
        return Observation(
            now=now,
            started_at=self.started_at,
            blind_after=self.blind_after,
            projects=self.projects,
            polls=health.polls,
            broken_channels=broken,
            outbox_pending=health.outbox_pending,
            oldest_pending_at=health.oldest_pending_at,
            outbox_dead=health.outbox_dead,
            installation_error=self.installation_error(),
            broken_sinks=self.broken_sinks(),
        )

    def _prior(self, records: Mapping[tuple[str, str], IncidentRecord] | None) -> dict[tuple[str, str], PriorIncident]:
        if records is None:
            return dict(self._memory)
        return {
            key: PriorIncident(r.kind, r.subject, r.state == IncidentState.OPEN, r.since, r.detail)
            for key, r in records.items()
        }

    def _tell(self, findings: Sequence[Finding], now: datetime, health: Health) -> None:
        """The log, the notes and the gauges: what every replica says, with or without an ops channel."""
        before = {f.key: f for f in self.findings}
        current = {f.key: f for f in findings}
        for key, finding in current.items():
            if key not in before:
                log.error("ops: %s (since %s)", finding.sentence, finding.since.isoformat())
        for key, finding in before.items():
            if key not in current:
                log.info("ops: resolved: %s", finding.title)
        for note in [k for k in self.notes if k.startswith(NOTE_PREFIX)]:
            del self.notes[note]
        for finding in findings:
            if finding.kind in _NOTED_KINDS:
                self.notes[f"{NOTE_PREFIX}{finding.kind.value}:{finding.subject}"] = (
                    f"{finding.sentence} (since {finding.since:%Y-%m-%d %H:%M} UTC)"
                )
        # Memory for a bot without an ops channel (with one, the table remembers).
        memory = dict(self._memory)
        for key, prior in self._memory.items():
            if key not in current and prior.open:
                memory[key] = replace(prior, open=False)
        for key, finding in current.items():
            memory[key] = PriorIncident(finding.kind.value, finding.subject, True, finding.since, finding.detail)
        self._memory = memory
        self.findings = list(findings)
        polls = {p.project: p for p in health.polls}
        for alias in self.projects:
            poll = polls.get(alias)
            last = poll.last_success_at if poll else None
            since = last or self.started_at
            metrics.POLL_SECONDS_SINCE_SUCCESS.labels(alias).set(max(0.0, (now - since).total_seconds()))
            if last is not None:
                metrics.POLL_LAST_SUCCESS.labels(alias).set(last.timestamp())
            metrics.PROJECT_BLIND.labels(alias).set(1 if (IncidentKind.BLIND.value, alias) in current else 0)
        for kind in IncidentKind:
            metrics.OPS_INCIDENTS.labels(kind.value).set(sum(1 for f in findings if f.kind is kind))


def ops_watch_for(
    config: Config,
    store: Store,
    gateway: SlackGateway | None,
    notes: MutableMapping[str, str],
    *,
    clock: Callable[[], datetime],
    replica: str,
    installation_error: Callable[[], str | None] = lambda: None,
    broken_config_channels: Callable[[], Mapping[str, str]] = dict,
    broken_sinks: Callable[[], Mapping[str, str]] = dict,
    check_every_s: float | None = None,
) -> OpsWatch:
    """The runtime's :class:`OpsWatch`: checks every poll interval (30 s at most) and after each tick."""
    s = config.settings
    every = check_every_s if check_every_s is not None else min(s.poll_interval, 30.0)
    sql = store if isinstance(store, SqlStore) else None
    channel = config.ops_channel if gateway is not None else None
    sinks = config.ops_sinks
    if (channel or sinks) and sql is None:
        log.warning("ops: an ops channel or ops sinks need the SQL store; reporting to the log and /healthz only")
    return OpsWatch(
        store,
        projects={p.alias: p.auth for p in config.projects},
        blind_after=s.blind_after,
        clock=clock,
        replica=replica,
        notes=notes,
        check_every_s=every,
        channel=channel,
        gateway=gateway,
        incidents=IncidentStore(sql) if sql is not None and (channel or sinks) else None,
        # Renewed before every Slack call; it must outlive one call with room to spare.
        lease_ttl_s=max(3 * every, 2 * s.slack_timeout + 5),
        installation_error=installation_error,
        broken_config_channels=broken_config_channels,
        broken_sinks=broken_sinks,
        sinks=sinks,
        locale=config.ops_locale,
    )
