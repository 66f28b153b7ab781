"""The ops channel: one message per incident of the bot's own health — posted, updated, resolved.

This module owns what the dead man's switch (``notify.ops``) says in ``GES_BOT_OPS_CHANNEL`` and
when: under the store lease ``ops`` (one replica posts), it posts one message per open problem
(the cause in a sentence, the fix, since when), updates it when its cause changes (at most once per
``blind_after``), and when the problem ends updates it to resolved and replies in its thread with
what the catch-up found; the ``ops_incidents`` table (``store.incidents``) remembers each message's
``ts``, so a restart updates instead of posting again. The messages (:func:`render_open`,
:func:`render_resolved`, :func:`render_reply`) are pure and built only with ``notify.mrkdwn``
(causes quote GES and Slack errors). Deciding what is a problem is ``watch.blindness``'s.

``[ops] sinks`` (group bots) hear of the same incidents: when an incident's record opens (or opens
again after its end was told) and when it is resolved, one sink outbox row per ops sink is written
in the same transaction as the record (``store.incidents``), so each change is told once across
replicas and restarts and delivered by ``sinks.worker`` (drawn by ``sinks.notice``). This works
without a Slack ops channel too (then records are only kept, not posted). A sink's own incident is
not told to that sink: it cannot take it.
The messages speak the ops channel's language (``GES_BOT_OPS_LOCALE`` / ``[ops] locale``: ``en`` or
``zh-CN``) through the catalogue of :mod:`ges_bot.words`: titles, labels, durations, how an
incident ended, and the cause and fix: ``watch.blindness`` writes them as catalogue sentences,
which the incident record keeps said in every language (``detail["said"]``, with the resolution),
so the ops channel and each ops sink read them in their own. The errors they quote (GES's and
Slack's own words) stay as those services wrote them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from ges_bot.domain import EventKind, JobEvent
from ges_bot.errors import SlackDeliveryError, StoreError
from ges_bot.notify.blockkit import SlackMessage, count, section
from ges_bot.notify.mrkdwn import Mrkdwn, channel_link, code, date_token, duration, escape, fit
from ges_bot.notify.render import duration_words
from ges_bot.notify.slack import SlackGateway
from ges_bot.store.api import SAID, OpsNotice, Store, said_in, said_of
from ges_bot.store.incidents import IncidentRecord, IncidentState, IncidentStore
from ges_bot.watch.blindness import Finding, IncidentKind, Sentence
from ges_bot.words import LOCALES, Words, words_for

__all__ = [
    "NOTE_CHANNEL",
    "OPS_LEASE",
    "OpsChannel",
    "render_open",
    "render_reply",
    "render_resolved",
    "said_everywhere",
]

# Logged as the ops watch, as before the split: one logger name for operators to filter on.
log = logging.getLogger("ges_bot.notify.ops")

OPS_LEASE = "ops"
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
NOTE_CHANNEL = "ops-channel"


def _subject(finding_kind: str, subject: str) -> Mrkdwn:
    if finding_kind == IncidentKind.CHANNEL.value:
        return channel_link(subject) or code(subject, 100)
    return code(subject, 100)


#: Each incident kind's title around its subject (``{subject}``: a project, channel or sink), as
#: catalogue message ids.
_TITLES = {
    IncidentKind.BLIND.value: "project {subject} is blind",
    IncidentKind.CHANNEL.value: "alerts cannot reach {subject}",
    IncidentKind.SLACK.value: "Slack refuses the bot",
    IncidentKind.BACKLOG.value: "alerts are not going out",
    IncidentKind.DEAD.value: "alerts were given up",
    IncidentKind.SINK.value: "alerts cannot reach sink {subject}",
}


def _title(kind: str, subject: str, w: Words) -> Mrkdwn:
    said = _TITLES.get(kind)
    if said is None:
        return Mrkdwn(f"{escape(kind + ' ')}{_subject(kind, subject)}")
    # The message id is ours (no markup); the subject is inserted already escaped.
    return Mrkdwn(w(escape(said), subject=_subject(kind, subject)))


def said_everywhere(sentence: Sentence) -> dict[str, str]:
    """``sentence`` in every language the catalogue speaks."""
    return {loc: words_for(loc)(sentence.msgid, **sentence.values) for loc in LOCALES}


def _detail(finding: Finding) -> dict[str, Any]:
    """What an incident record keeps of ``finding`` besides its English sentences: its figures,
    and its cause and fix said in every language (``said``), for whoever reads it in which."""
    said = {key: said_everywhere(sentence) for key, sentence in finding.said.items()}
    return {**finding.detail, SAID: said} if said else dict(finding.detail)


def _said(record: IncidentRecord, key: str, locale: str, english: str) -> str:
    return said_in(record.detail.get(SAID), key, locale) or english


def _date(w: Words, at: datetime) -> str:
    return date_token(at) if w.locale == "en" else date_token(at, fallback=w.when(at))


def _span(w: Words, span: timedelta) -> str:
    return duration(span) if w.locale == "en" else duration_words(w, span)


def render_open(record: IncidentRecord, locale: str = "en") -> SlackMessage:
    """The ops message of an open incident (pure), in ``locale``."""
    w = words_for(locale)
    cause = _said(record, "cause", locale, record.cause)
    fix = _said(record, "fix", locale, record.fix)
    blocks = [
        section(f"🚨 *ges-bot: {_title(record.kind, record.subject, w)}*"),
        section(w("*What:* {cause}", cause=fit(cause, _CAUSE_LIMIT))),
        section(w("*Fix:* {fix}", fix=fit(fix, _CAUSE_LIMIT))),
        section(w("*Since:* {when}", when=_date(w, record.since))),
    ]
    text = _headline(record) + " " + w("{cause} Fix: {fix}", cause=fit(cause, _TEXT_PART), fix=fit(fix, _TEXT_PART))
    return SlackMessage(text, blocks)


def _headline(record: IncidentRecord) -> str:
    """The start of an open incident's fallback text: it changes only when the kind of trouble does
    (the same in every language, so a change of language is not a change of trouble)."""
    trouble = record.detail.get("error_kind") or record.kind
    return f"ges-bot: {escape(record.kind)} {fit(record.subject, 100)} [{escape(str(trouble))}]:"


def render_resolved(record: IncidentRecord, locale: str = "en") -> SlackMessage:
    """The ops message of an incident that ended (its first message, updated) (pure), in ``locale``."""
    w = words_for(locale)
    end = record.resolved_at or record.since
    blocks = [
        section(w("✅ *Resolved — ges-bot: {title}*", title=_title(record.kind, record.subject, w))),
        section(f"~{fit(_said(record, 'cause', locale, record.cause), _CAUSE_LIMIT)}~"),
        section(
            w(
                "From {since} to {end} ({span}).",
                since=_date(w, record.since),
                end=_date(w, end),
                span=_span(w, end - record.since),
            )
        ),
    ]
    resolution = fit(_said(record, "resolution", locale, record.resolution or w("recovered")), _TEXT_PART)
    text = w(
        "Resolved: ges-bot {kind} {subject} ({resolution})",
        kind=escape(record.kind),
        subject=fit(record.subject, 100),
        resolution=resolution,
    )
    return SlackMessage(text, blocks)


def render_reply(record: IncidentRecord, locale: str = "en") -> SlackMessage:
    """The thread reply when an incident ends: what recovered and what the catch-up found (pure)."""
    w = words_for(locale)
    end = record.resolved_at or record.since
    resolution = _said(record, "resolution", locale, record.resolution or w("recovered."))
    body = w(
        "✅ Recovered after {span}: {resolution}",
        span=_span(w, end - record.since),
        resolution=fit(resolution, _CAUSE_LIMIT),
    )
    return SlackMessage(w("Recovered: {resolution}", resolution=fit(resolution, _TEXT_PART)), [section(body)])


class OpsChannel:
    """Posts, updates and resolves the ops channel's incident messages (see the module docstring).
    ``post_error`` holds the sentence of the last refusal of a round (``None``: none)."""

    def __init__(
        self,
        store: Store,
        incidents: IncidentStore,
        gateway: SlackGateway | None,
        *,
        channel: str | None,
        replica: str,
        lease_ttl_s: float,
        blind_after: timedelta,
        notes: Mapping[str, str],
        sinks: Sequence[str] = (),
        locale: str = "en",
    ) -> None:
        self.store = store
        #: The language of the messages (``GES_BOT_OPS_LOCALE``) and of the resolutions it writes.
        self.locale = locale
        self.incidents = incidents
        #: ``None`` (no Slack ops channel): incidents are still recorded, and told to ``sinks``.
        self.gateway = gateway if channel is not None else None
        self.channel = channel or ""
        #: ``[ops] sinks``: told of each incident's start and end through the sink outbox.
        self.sinks = tuple(sinks)
        self.replica = replica
        self.lease_ttl_s = lease_ttl_s
        self.blind_after = blind_after
        self.notes = notes
        self.post_error: str | None = None

    async def _hold(self, now: datetime) -> bool:
        return await self.store.try_lease(OPS_LEASE, self.replica, now, self.lease_ttl_s)

    async def sync(
        self, findings: Sequence[Finding], records: Mapping[tuple[str, str], IncidentRecord], now: datetime
    ) -> None:
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
                    detail=_detail(finding),
                )
                await self._save(record, "open", now)
            elif record.state == IncidentState.RESOLVED or (record.cause, record.fix, record.detail) != (
                finding.cause,
                finding.fix,
                _detail(finding),
            ):
                # Back before its recovery was announced: the same message carries on (the sinks,
                # told of the end already, are told it is back).
                reopened = record.state == IncidentState.RESOLVED
                record = replace(
                    record,
                    state=IncidentState.OPEN,
                    cause=finding.cause,
                    fix=finding.fix,
                    detail=_detail(finding),
                    resolved_at=None,
                    resolution=None,
                )
                await self._save(record, "open" if reopened else None, now)
            if not await self._post_open(record, now):
                return
        for key, stored in records.items():
            if key in current or stored.state == IncidentState.CLOSED:
                continue
            ended = stored
            if stored.state == IncidentState.OPEN:
                resolution = await self._resolution(stored)
                said = {**said_of(stored.detail.get(SAID)), "resolution": resolution}
                ended = replace(
                    stored,
                    state=IncidentState.RESOLVED,
                    resolved_at=now,
                    resolution=resolution["en"],
                    detail={**stored.detail, SAID: said},
                )
                await self._save(ended, "resolved", now)
            if not await self._post_resolved(ended, now):
                return

    def _told(self, record: IncidentRecord) -> tuple[str, ...]:
        """The ops sinks told of ``record``: all but a sink whose own incident it is (a broken
        sink cannot take news of itself; its notice would only wait behind its alerts)."""
        if record.kind == IncidentKind.SINK.value:
            return tuple(name for name in self.sinks if name != record.subject)
        return self.sinks

    async def _save(self, record: IncidentRecord, phase: str | None, now: datetime) -> None:
        """Record ``record``; with ``phase``, tell the ops sinks in the same transaction."""
        sinks = self._told(record) if phase is not None else ()
        notice = (
            OpsNotice(
                phase=phase,
                kind=record.kind,
                subject=record.subject,
                since=record.since,
                cause=record.cause,
                fix=record.fix,
                resolved_at=record.resolved_at,
                resolution=record.resolution,
                said=said_of(record.detail.get(SAID)),
            )
            if phase is not None and sinks
            else None
        )
        await self.incidents.save(record, notice=notice, sinks=sinks, now=now)

    async def _post_open(self, record: IncidentRecord, now: datetime) -> bool:
        """Post or update an open incident's message; ``False`` when this round should stop."""
        if self.gateway is None:
            return True
        message = render_open(record, self.locale)
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
        if not await self._hold(now):
            return False
        if self.gateway is None:
            await self.incidents.save(replace(record, state=IncidentState.CLOSED, updated_at=now))
            return True
        try:
            if record.ts is not None:
                # The update first: repeating it is harmless, repeating the reply is not.
                done = render_resolved(record, self.locale)
                await self.gateway.update(record.channel or self.channel, record.ts, done.text, done.blocks)
                reply = render_reply(record, self.locale)
                await self.gateway.post(record.channel or self.channel, reply.text, reply.blocks, thread_ts=record.ts)
            else:
                # It ended before it could be posted (Slack was refusing): say so once, afterwards.
                done = render_resolved(record, self.locale)
                reply = render_reply(record, self.locale)
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
        if self.notes.get(NOTE_CHANNEL) != sentence:
            log.warning("ops: %s", sentence)
        self.post_error = sentence

    async def _resolution(self, record: IncidentRecord) -> dict[str, str]:
        """How it ended, in every language; for a blind project, with what the catch-up found."""
        caught_up: list[JobEvent] | None = None
        if record.kind == IncidentKind.BLIND.value:
            try:
                events = await self.store.recent_events(record.since, tuple(_CAUGHT_UP), 10_000)
            except StoreError:
                events = None
            caught_up = None if events is None else [e for e in events if e.project == record.subject]
        return {loc: self._resolution_in(words_for(loc), record, caught_up) for loc in LOCALES}

    def _resolution_in(self, w: Words, record: IncidentRecord, caught_up: list[JobEvent] | None) -> str:
        kind = record.kind
        if kind == IncidentKind.BLIND.value:
            if caught_up is None:
                return w("GES answers again.")
            if not caught_up:
                found = w("caught up: nothing was missed")
            else:
                parts = [
                    _count(w, n, _CAUGHT_UP[kind])
                    for kind in _CAUGHT_UP
                    if (n := sum(1 for e in caught_up if e.kind is kind))
                ]
                found = w("caught up: {parts} alerted", parts=w(" and ").join(parts))
            return w("GES answers again; {found}.", found=found)
        if kind == IncidentKind.CHANNEL.value:
            return w("Slack accepts alerts for that channel again (or its subscriptions were removed).")
        if kind == IncidentKind.SLACK.value:
            return w("Slack accepts the bot's token again; delivery resumed with what had waited.")
        if kind == IncidentKind.BACKLOG.value:
            return w("the outbox has drained: alerts are going out again.")
        if kind == IncidentKind.SINK.value:
            return w("the group bot accepts alerts again; what had waited went out.")
        dead = int(record.detail.get("dead", 0)) - int(record.detail.get("baseline", 0))
        return w(
            "no further alert given up for {span} ({alerts} given up in this incident).",
            span=_span(w, self.blind_after),
            alerts=_count(w, dead, "alert"),
        )


def _count(w: Words, n: int, one: str) -> str:
    """ "2 failures" — or the locale's words for it (message id ``{n} failures``)."""
    if w.locale == "en":
        return count(n, one)
    return w(f"{{n}} {one}s", n=w.number(n))
