"""Routing: which channels hear about which events — one ``Delivery`` per channel × project × graph.

This module owns the pure decision "events × subscriptions × mutes → deliveries": a channel
receives an event when any of its unbroken subscriptions ``matches`` it (kinds, project,
job names, graph pattern — :meth:`ges_bot.domain.Subscription.matches`). Events of one
(channel, project, graph) from one call form one :class:`~ges_bot.domain.Delivery`, so a channel
gets one message per graph per tick; ``recovered`` events form a delivery of their own, because
delivery posts them in the thread of the graph's last failure rather than as a new alert.
A mute in force for (channel, graph) turns a delivery into a
:class:`~ges_bot.domain.MutedDelivery`; a mute from an alert's button is ``exact`` and silences only
the graph it names (a graph called ``g*`` is not a pattern), a typed mute is a pattern.
``status_changed`` events never route; ``unknown_outcome`` events (a status ges-bot does not know)
route like failures, to subscriptions that ask for them (the default ones do).

It also owns a delivery's language (:func:`delivery_locale`). One message per channel per event
stays the rule, so when several subscriptions of a channel match and ask for different languages,
one of them decides: a language other than English wins (someone asked for it on purpose — a
channel's English ``*`` from long ago must not undo a new ``prod-* lang zh-CN``), and between two
such languages the lowest subscription id (config-file ones first, then the oldest Slack one).
The choice is stored with the outbox row, so every replica renders the same words.

It also owns the order of events inside a delivery (:func:`event_order`: failures first), which
rendering keeps. Pure: no I/O, no clock (``now`` is an argument), no database; it must not render.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ges_bot.domain import Delivery, EventKind, JobEvent, Mute, MutedDelivery, Subscription

__all__ = ["KIND_SEVERITY", "RoutingResult", "delivery_locale", "event_order", "route"]

#: Most urgent first: the order of events in a delivery and the kind a multi-event alert leads with.
KIND_SEVERITY: dict[EventKind, int] = {
    EventKind.FAILED: 0,
    # A status nobody knows may be a failure: right after the certain ones.
    EventKind.UNKNOWN_OUTCOME: 1,
    EventKind.PARTIALLY_FAILED: 2,
    EventKind.STUCK: 3,
    EventKind.RECOVERED: 4,
    EventKind.SUCCEEDED: 5,
    EventKind.STATUS_CHANGED: 6,
}


@dataclass(frozen=True, slots=True)
class RoutingResult:
    """What one call of :func:`route` decided: deliveries to send and deliveries a mute silenced."""

    deliveries: tuple[Delivery, ...]
    muted: tuple[MutedDelivery, ...]


def event_order(event: JobEvent) -> tuple[int, datetime, str]:
    """Sort key inside a delivery: most severe kind first, then by time (end, else begin, else
    when observed), then job id so that the order never depends on input order."""
    job = event.job
    when = job.end_time or job.begin_time or event.at
    return (KIND_SEVERITY.get(event.kind, len(KIND_SEVERITY)), when, job.job_id)


def delivery_locale(subscriptions: Sequence[Subscription]) -> str:
    """The language of one delivery from the subscriptions that routed it (see the module docstring)."""
    chosen = sorted((s for s in subscriptions if s.locale != "en"), key=lambda s: s.id)
    return chosen[0].locale if chosen else "en"


@dataclass
class _Group:
    events: dict[str, JobEvent]
    subscriptions: dict[int, Subscription]


def route(
    events: Sequence[JobEvent],
    subscriptions: Sequence[Subscription],
    mutes: Sequence[Mute],
    now: datetime,
) -> RoutingResult:
    """Route a tick's events to channels; see the module docstring for the rules.

    Output is deterministic: deliveries sorted by (channel, project, graph), the ordinary
    delivery of a group before its ``recovered`` one; an event appears once per delivery even
    if several subscriptions of the channel match it (their ids are all in ``subscription_ids``).
    """
    live = [s for s in subscriptions if s.broken is None]
    groups: dict[tuple[str, str, str, bool], _Group] = {}
    for event in events:
        if event.kind is EventKind.STATUS_CHANGED:
            continue
        for sub in live:
            if not sub.matches(event):
                continue
            key = (sub.channel, event.project, event.graph, event.kind is EventKind.RECOVERED)
            group = groups.setdefault(key, _Group(events={}, subscriptions={}))
            group.events.setdefault(event.dedup_key, event)
            group.subscriptions[sub.id] = sub

    deliveries: list[Delivery] = []
    muted: list[MutedDelivery] = []
    for key in sorted(groups):
        channel, project, graph, _ = key
        group = groups[key]
        subs = [group.subscriptions[i] for i in sorted(group.subscriptions)]
        delivery = Delivery(
            channel=channel,
            project=project,
            graph=graph,
            events=tuple(sorted(group.events.values(), key=event_order)),
            team=next((s.team for s in subs if s.team is not None), None),
            subscription_ids=tuple(s.id for s in subs),
            locale=delivery_locale(subs),
        )
        mute = _mute_for(mutes, channel, graph, now)
        if mute is None:
            deliveries.append(delivery)
        else:
            muted.append(MutedDelivery(delivery=delivery, mute_id=mute.id))
    return RoutingResult(deliveries=tuple(deliveries), muted=tuple(muted))


def _mute_for(mutes: Sequence[Mute], channel: str, graph: str, now: datetime) -> Mute | None:
    """The mute in force that lasts longest (then lowest id), so the record names the one that matters."""
    silencing = [m for m in mutes if m.silences(channel, graph, now)]
    if not silencing:
        return None
    return min(silencing, key=lambda m: (-m.until.timestamp(), m.id))
