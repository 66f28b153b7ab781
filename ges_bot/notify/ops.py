"""Telling people when the bot is blind: the ops channel, the log and the notes that health shows.

This module owns the dead man's switch's *shell*: every ``check_every_s`` (and after every poll
tick) it reads the store's figures, asks ``watch.blindness.assess`` (pure) which problems are open,
and then

- logs each problem once when it opens (ERROR) and when it ends (INFO);
- keeps ``Services.notes`` (shown by ``/gesjobs status``, the Home tab and ``/healthz``) in step,
  under ``ops:<kind>:<subject>`` keys — the same sentence as the log;
- sets the health gauges of ``ges_bot.metrics`` (seconds since each project's last good poll,
  blind projects, open incidents by kind);
- with an ops channel (``GES_BOT_OPS_CHANNEL``), posts one message per problem there — the
  project, the cause in a sentence, how to fix it, since when — updates it (``chat.update``) when
  its cause changes (at most once per ``blind_after``), and when it ends updates it to resolved
  and replies in its thread with what the catch-up found.

Every replica assesses (the figures come from the shared store, so they agree); only the holder of
the store lease ``ops`` posts, and the ``ops_incidents`` table remembers each message's ``ts``, so
several replicas post an incident once and a restart updates it instead of posting it again. The
one duplicate window is the delivery worker's: a crash after Slack accepted a post and before its
``ts`` was recorded posts that message again.

Ops messages' text is built only with ``notify.mrkdwn`` (causes quote GES and Slack errors).
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
from ges_bot.domain import EventKind
from ges_bot.errors import GesBotError, SlackDeliveryError, StoreError
from ges_bot.notify.blockkit import SlackMessage, count, section
from ges_bot.notify.mrkdwn import Mrkdwn, channel_link, code, date_token, duration, escape, fit
from ges_bot.notify.slack import SlackGateway
from ges_bot.store.api import Health, Store
from ges_bot.store.incidents import IncidentRecord, IncidentState, IncidentStore
from ges_bot.store.sql import SqlStore
from ges_bot.watch.blindness import Finding, IncidentKind, Observation, PriorIncident, assess

__all__ = ["NOTE_PREFIX", "OPS_LEASE", "OpsWatch", "ops_watch_for", "render_open", "render_reply", "render_resolved"]

log = logging.getLogger(__name__)

OPS_LEASE = "ops"
NOTE_PREFIX = "ops:"
#: Kinds whose problem ``Services.notes`` does not show already (the delivery worker notes a
#: refused token and broken config-file channels; the store's broken subscriptions are listed).
_NOTED_KINDS = frozenset({IncidentKind.BLIND, IncidentKind.BACKLOG, IncidentKind.DEAD})
#: Each section's untrusted part (a section holds 3000); each part of the fallback text (≤ 3000 in all).
_CAUSE_LIMIT = 2800
_TEXT_PART = 1300
#: What a blind project's catch-up reports, in this order: the kinds alerted like failures (an
#: unknown outcome may be one, so it is not "nothing missed").
_CAUGHT_UP = {
    EventKind.FAILED: "failure",
    EventKind.PARTIALLY_FAILED: "partial failure",
    EventKind.UNKNOWN_OUTCOME: "unknown outcome",
}
#: ``notes`` key of a problem with the ops channel itself (kept outside ``NOTE_PREFIX`` upkeep).
_NOTE_CHANNEL = "ops-channel"


def _subject(finding_kind: str, subject: str) -> Mrkdwn:
    if finding_kind == IncidentKind.CHANNEL.value:
        return channel_link(subject) or code(subject, 100)
    return code(subject, 100)


def _title(kind: str, subject: str) -> Mrkdwn:
    words = {
        IncidentKind.BLIND.value: ("project ", " is blind"),
        IncidentKind.CHANNEL.value: ("alerts cannot reach ", ""),
        IncidentKind.SLACK.value: ("Slack refuses the bot", None),
        IncidentKind.BACKLOG.value: ("alerts are not going out", None),
        IncidentKind.DEAD.value: ("alerts were given up", None),
    }.get(kind, (f"{kind} ", ""))
    head, tail = words
    if tail is None:
        return Mrkdwn(escape(head))
    return Mrkdwn(f"{escape(head)}{_subject(kind, subject)}{escape(tail)}")


def render_open(record: IncidentRecord) -> SlackMessage:
    """The ops message of an open incident (pure)."""
    blocks = [
        section(f"🚨 *ges-bot: {_title(record.kind, record.subject)}*"),
        section(f"*What:* {fit(record.cause, _CAUSE_LIMIT)}"),
        section(f"*Fix:* {fit(record.fix, _CAUSE_LIMIT)}"),
        section(f"*Since:* {date_token(record.since)}"),
    ]
    text = f"{_headline(record)} {fit(record.cause, _TEXT_PART)} Fix: {fit(record.fix, _TEXT_PART)}"
    return SlackMessage(text, blocks)


def _headline(record: IncidentRecord) -> str:
    """The start of an open incident's fallback text: it changes only when the kind of trouble does."""
    trouble = record.detail.get("error_kind") or record.kind
    return f"ges-bot: {escape(record.kind)} {fit(record.subject, 100)} [{escape(str(trouble))}]:"


def render_resolved(record: IncidentRecord) -> SlackMessage:
    """The ops message of an incident that ended (its first message, updated) (pure)."""
    end = record.resolved_at or record.since
    blocks = [
        section(f"✅ *Resolved — ges-bot: {_title(record.kind, record.subject)}*"),
        section(f"~{fit(record.cause, _CAUSE_LIMIT)}~"),
        section(f"From {date_token(record.since)} to {date_token(end)} ({duration(end - record.since)})."),
    ]
    resolution = fit(record.resolution or "recovered", _TEXT_PART)
    return SlackMessage(f"Resolved: ges-bot {escape(record.kind)} {fit(record.subject, 100)} ({resolution})", blocks)


def render_reply(record: IncidentRecord) -> SlackMessage:
    """The thread reply when an incident ends: what recovered and what the catch-up found (pure)."""
    end = record.resolved_at or record.since
    resolution = record.resolution or "recovered."
    body = f"✅ Recovered after {duration(end - record.since)}: {fit(resolution, _CAUSE_LIMIT)}"
    return SlackMessage(f"Recovered: {fit(resolution, _TEXT_PART)}", [section(body)])


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
        self.started_at = clock()
        #: The problems open at the last round (``/healthz`` shows them).
        self.findings: list[Finding] = []
        self._memory: dict[tuple[str, str], PriorIncident] = {}
        self._post_error: str | None = None
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
        if self.channel is not None:
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
            records = await self.incidents.all() if self.channel is not None and self.incidents else None
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
        if self.channel is not None and records is not None:
            self._post_error = None
            try:
                await self._sync(findings, records, now)
            except StoreError as exc:
                log.warning("ops: could not record the ops channel's messages: %s", exc)
            else:
                if self._post_error is not None:
                    self.notes[_NOTE_CHANNEL] = self._post_error
                else:
                    self.notes.pop(_NOTE_CHANNEL, None)
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

    # --- the ops channel -------------------------------------------------------------------------

    async def _hold(self, now: datetime) -> bool:
        return await self.store.try_lease(OPS_LEASE, self.replica, now, self.lease_ttl_s)

    async def _sync(
        self, findings: Sequence[Finding], records: Mapping[tuple[str, str], IncidentRecord], now: datetime
    ) -> None:
        assert self.incidents is not None
        if not await self._hold(now):
            return
        # Read again now that the lease is ours: what was read before it may predate a message
        # another replica posted while it held the lease (a slow round outlives a short lease).
        records = await self.incidents.all()
        current = {f.key: f for f in findings}
        for finding in findings:
            record = records.get(finding.key)
            if record is None or record.state == IncidentState.CLOSED:
                record = IncidentRecord(
                    kind=finding.kind.value,
                    subject=finding.subject,
                    state=IncidentState.OPEN,
                    since=finding.since,
                    cause=finding.cause,
                    fix=finding.fix,
                    detail=dict(finding.detail),
                )
                await self.incidents.save(record)
            elif record.state == IncidentState.RESOLVED or (record.cause, record.fix, record.detail) != (
                finding.cause,
                finding.fix,
                dict(finding.detail),
            ):
                # Back before its recovery was announced: the same message carries on.
                record = replace(
                    record,
                    state=IncidentState.OPEN,
                    cause=finding.cause,
                    fix=finding.fix,
                    detail=dict(finding.detail),
                    resolved_at=None,
                    resolution=None,
                )
                await self.incidents.save(record)
            if not await self._post_open(record, now):
                return
        for key, stored in records.items():
            if key in current or stored.state == IncidentState.CLOSED:
                continue
            ended = stored
            if stored.state == IncidentState.OPEN:
                ended = replace(
                    stored,
                    state=IncidentState.RESOLVED,
                    resolved_at=now,
                    resolution=await self._resolution(stored, now),
                )
                await self.incidents.save(ended)
            if not await self._post_resolved(ended, now):
                return

    async def _post_open(self, record: IncidentRecord, now: datetime) -> bool:
        """Post or update an open incident's message; ``False`` when this round should stop."""
        assert self.gateway is not None
        assert self.incidents is not None
        assert self.channel is not None
        message = render_open(record)
        if record.ts is not None:
            if record.posted_text == message.text:
                return True
            changed_cause = not (record.posted_text or "").startswith(_headline(record))
            if record.updated_at is not None and now - record.updated_at < self.blind_after and not changed_cause:
                return True  # at most one update per blind_after, unless the kind of trouble changed
        if not await self._hold(now):
            return False
        try:
            if record.ts is None:
                posted = await self.gateway.post(self.channel, message.text, message.blocks)
                record = replace(record, channel=posted.channel, ts=posted.ts, posted_at=now)
            else:
                await self.gateway.update(record.channel or self.channel, record.ts, message.text, message.blocks)
        except SlackDeliveryError as exc:
            self._cannot_post(exc)
            return False
        await self.incidents.save(replace(record, posted_text=message.text, updated_at=now))
        return True

    async def _post_resolved(self, record: IncidentRecord, now: datetime) -> bool:
        assert self.gateway is not None
        assert self.incidents is not None
        assert self.channel is not None
        if not await self._hold(now):
            return False
        try:
            if record.ts is not None:
                # The update first: repeating it is harmless, repeating the reply is not.
                done = render_resolved(record)
                await self.gateway.update(record.channel or self.channel, record.ts, done.text, done.blocks)
                reply = render_reply(record)
                await self.gateway.post(record.channel or self.channel, reply.text, reply.blocks, thread_ts=record.ts)
            else:
                # It ended before it could be posted (Slack was refusing): say so once, afterwards.
                done = render_resolved(record)
                reply = render_reply(record)
                await self.gateway.post(self.channel, done.text, [*done.blocks, *reply.blocks])
        except SlackDeliveryError as exc:
            self._cannot_post(exc)
            return False
        await self.incidents.save(replace(record, state=IncidentState.CLOSED, updated_at=now))
        return True

    def _cannot_post(self, exc: SlackDeliveryError) -> None:
        sentence = (
            f"ges-bot cannot post to its ops channel {self.channel} (Slack answered {exc.error}). Fix: check "
            "GES_BOT_OPS_CHANNEL and invite the bot there if it is private; it retries at every check."
        )
        # Once per distinct answer: a wrong channel must not fill the log at every check.
        if self.notes.get(_NOTE_CHANNEL) != sentence:
            log.warning("ops: %s", sentence)
        self._post_error = sentence

    async def _resolution(self, record: IncidentRecord, now: datetime) -> str:
        """A sentence on how it ended, and for a blind project what the catch-up found."""
        kind = record.kind
        if kind == IncidentKind.BLIND.value:
            try:
                events = await self.store.recent_events(record.since, tuple(_CAUGHT_UP), 10_000)
            except StoreError:
                return "GES answers again."
            mine = [e for e in events if e.project == record.subject]
            if not mine:
                found = "caught up: nothing was missed"
            else:
                parts = [
                    count(n, _CAUGHT_UP[kind]) for kind in _CAUGHT_UP if (n := sum(1 for e in mine if e.kind is kind))
                ]
                found = f"caught up: {' and '.join(parts)} alerted"
            return f"GES answers again; {found}."
        if kind == IncidentKind.CHANNEL.value:
            return "Slack accepts alerts for that channel again (or its subscriptions were removed)."
        if kind == IncidentKind.SLACK.value:
            return "Slack accepts the bot's token again; delivery resumed with what had waited."
        if kind == IncidentKind.BACKLOG.value:
            return "the outbox has drained: alerts are going out again."
        dead = int(record.detail.get("dead", 0)) - int(record.detail.get("baseline", 0))
        return (
            f"no further alert given up for {duration(self.blind_after)} "
            f"({count(dead, 'alert')} given up in this incident)."
        )


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
    check_every_s: float | None = None,
) -> OpsWatch:
    """The runtime's :class:`OpsWatch`: checks every poll interval (30 s at most) and after each tick."""
    s = config.settings
    every = check_every_s if check_every_s is not None else min(s.poll_interval, 30.0)
    sql = store if isinstance(store, SqlStore) else None
    channel = config.ops_channel
    if channel and sql is None:
        log.warning("ops: GES_BOT_OPS_CHANNEL needs the SQL store; reporting to the log and /healthz only")
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
        incidents=IncidentStore(sql) if sql is not None and channel else None,
        # Renewed before every Slack call; it must outlive one call with room to spare.
        lease_ttl_s=max(3 * every, 2 * s.slack_timeout + 5),
        installation_error=installation_error,
        broken_config_channels=broken_config_channels,
    )
