"""The store's interface: what the shell (poller, delivery, Slack app) may ask of the database.

This module owns the *shape* of persistence — the records exchanged with the store and one
protocol per caller: :class:`WatchStore` (the poller), :class:`OutboxStore` (delivery),
:class:`SubscriptionStore` (subscribe and mute), :class:`QueryStore` (answers, Home, health) and
:class:`Leases`; :class:`Store` is their union, as the runtime holds it. Not its implementation
(``ges_bot.store.sql`` implements it on SQLAlchemy, for SQLite and PostgreSQL). Each caller is
typed with the narrowest protocol, so a test fakes only what its caller uses. The store never
reads the clock: callers pass ``now``. It splits long id lists under the database's parameter
caps itself; callers pass any number.

Guarantees every implementation gives:
- ``commit_tick`` is one transaction: snapshots, events, outcomes, outbox rows and the poll state
  land together or not at all.
- Events are unique by ``JobEvent.dedup_key`` forever; an event already recorded is silently
  skipped, and so are the parts of deliveries that carry it (no outbox row for a known event).
- ``claim_outbox`` never hands the same row to two workers while a claim lease is live
  (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; a single writer on SQLite).
- ``mark_sent``, ``mark_retry`` and ``mark_dead`` given a ``worker`` are *fenced*: they change
  the row only while it is pending and claimed by that worker, and say whether they did, so a
  worker whose claim ran out cannot undo what the row's new holder did.
- ``renew_claims`` extends only claims the worker still holds: a worker that stalled past its
  lease and lost a row to another worker cannot take it back by renewing.
- ``mark_sent`` writes an alert's thread replies as outbox rows in the same transaction, so a
  message marked sent never loses the replies that continue it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ges_bot.domain import Delivery, EventKind, Job, JobEvent, Mute, MutedDelivery, Subscription
from ges_bot.schedule import DigestSchedule


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The last known state of one job, with the bookkeeping diff needs."""

    project: str
    job: Job
    first_seen: datetime
    last_seen: datetime
    last_change: datetime
    stuck_reported: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """The last terminal result of a graph's job of one ``job_name`` (for ``recovered``)."""

    project: str
    graph: str
    job_name: str
    job_id: str
    status: str
    at: datetime


@dataclass(frozen=True, slots=True)
class PollState:
    """Per project: when the last tick succeeded, the last error, and the baseline flag."""

    project: str
    baselined_at: datetime | None = None
    last_success_at: datetime | None = None
    last_attempt_at: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    #: Opaque, poller-owned memo (e.g. last ``job_count`` per query) kept between ticks.
    cursor: dict[str, int] = field(default_factory=dict)
    #: The kind of the last error (``watch.blindness.ErrorKind`` values: ``auth``, ``server`` …).
    last_error_kind: str | None = None
    #: The first failure of the current run of failures; ``None`` once a tick succeeds.
    failing_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class TickResult:
    """Everything one successful tick writes, in one transaction."""

    project: str
    at: datetime
    snapshots: Sequence[Snapshot]
    events: Sequence[JobEvent]
    outcomes: Sequence[Outcome]
    deliveries: Sequence[Delivery]
    muted: Sequence[MutedDelivery] = ()
    cursor: dict[str, int] = field(default_factory=dict)
    baseline: bool = False
    #: Some scan failed: what the others found is committed, but the tick is no success — the
    #: poll state records this as its error and keeps ``last_success_at``.
    degraded: str | None = None
    #: The ``ErrorKind`` (``watch.blindness``) of what failed, recorded as ``last_error_kind``.
    degraded_kind: str | None = None


@dataclass(frozen=True, slots=True)
class TickCommit:
    """What ``commit_tick`` actually recorded."""

    new_events: tuple[JobEvent, ...]
    outbox_ids: tuple[int, ...]


class OutboxState:
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class ThreadReply:
    """A reply in the thread of a message already posted — an alert's overflow — as rendered.

    ``mark_sent`` writes one outbox row per reply of the alert it records; such a row carries the
    alert's :class:`Delivery` (for the channel, logs and bookkeeping) and this reply, which is
    posted exactly as given, in ``part`` order.
    """

    #: The outbox row of the alert this reply continues.
    parent_id: int
    #: 1, 2 …: the order the replies of one alert go out in.
    part: int
    #: The alert's Slack ``ts``: the thread to reply in.
    thread_ts: str
    text: str
    blocks: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class OpsNotice:
    """An ops incident's start (``phase`` ``"open"``) or end (``"resolved"``) told to a group-bot
    sink: kept in a sink outbox row (its ``message``), rendered in the sink's words when sent.
    ``said`` holds the sentences in every language (see :func:`said_in`); ``cause``, ``fix`` and
    ``resolution`` are the English ones."""

    phase: str
    kind: str
    subject: str
    since: datetime
    cause: str
    fix: str
    resolved_at: datetime | None = None
    resolution: str | None = None
    said: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "notice": "ops",
            "phase": self.phase,
            "kind": self.kind,
            "subject": self.subject,
            "since": self.since.isoformat(),
            "cause": self.cause,
            "fix": self.fix,
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at is not None else None,
            "resolution": self.resolution,
            SAID: {key: dict(texts) for key, texts in self.said.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OpsNotice | None:
        """The notice kept in an outbox row's ``message``, or ``None`` when it holds none."""
        if data.get("notice") != "ops":
            return None
        ended = data.get("resolved_at")
        return cls(
            phase=str(data.get("phase") or "open"),
            kind=str(data.get("kind") or ""),
            subject=str(data.get("subject") or ""),
            since=datetime.fromisoformat(str(data["since"])),
            cause=str(data.get("cause") or ""),
            fix=str(data.get("fix") or ""),
            resolved_at=datetime.fromisoformat(str(ended)) if ended else None,
            resolution=data.get("resolution"),
            said=said_of(data.get(SAID)),
        )


#: Where an ops incident keeps its sentences in every language: ``{"cause": {"en": …, "zh-CN": …}, …}``.
SAID = "said"


def said_of(value: object) -> dict[str, dict[str, str]]:
    """The sentences kept under :data:`SAID` (in a notice or an incident's detail), read back from
    JSON: anything that is not a sentence in some language is left out."""
    if not isinstance(value, Mapping):
        return {}
    return {
        str(key): {str(loc): text for loc, text in texts.items() if isinstance(text, str)}
        for key, texts in value.items()
        if isinstance(texts, Mapping)
    }


def said_in(said: object, key: str, locale: str) -> str | None:
    """Sentence ``key`` (``cause``, ``fix``, ``resolution``) of ``said`` in ``locale``; ``None``
    when none was kept in that language (the English field stands then)."""
    texts = said.get(key) if isinstance(said, Mapping) else None
    text = texts.get(locale) if isinstance(texts, Mapping) else None
    return text if isinstance(text, str) else None


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One Slack message waiting to be (re)sent: a :class:`Delivery` plus delivery bookkeeping."""

    id: int
    delivery: Delivery
    state: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None = None
    ts: str | None = None
    #: Set on a thread reply's row (an alert's overflow): post this, in that thread.
    reply: ThreadReply | None = None
    #: Set on a sink row that tells of an ops incident (``[ops] sinks``) instead of an alert.
    notice: OpsNotice | None = None


@dataclass(frozen=True, slots=True)
class MarkedSent:
    """What ``mark_sent`` did: whether the row was recorded as sent (a fenced update that finds
    the row no longer the worker's writes nothing), and the rows written with it."""

    applied: bool
    #: The rows written in the same transaction, oldest first: the ``rest`` row, then the thread
    #: replies in part order (claimed by the worker, when one was given).
    rows: tuple[OutboxItem, ...] = ()


@dataclass(frozen=True, slots=True)
class PostedMessage:
    """A message we posted, remembered for threading recoveries and updating the original."""

    channel: str
    ts: str
    project: str
    graph: str
    job_names: tuple[str, ...]
    outbox_id: int
    posted_at: datetime
    recovered: bool = False
    #: The failed jobs the message reported: a recovery threads under the message holding the job
    #: it recovers (``Store.message_for_failure``).
    job_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class JobQuery:
    """A query over stored snapshots (the /gesjobs fallback when GES is unreachable)."""

    project: str | None = None
    statuses: frozenset[str] = frozenset()
    graph_pattern: str | None = None
    job_name: str | None = None
    job_id: str | None = None
    #: Inclusive lower / exclusive upper bound on begin_time (or end_time when begin is unknown).
    since: datetime | None = None
    until: datetime | None = None
    #: Inclusive lower / exclusive upper bound on when a job is *placed*: its end time, or its
    #: begin time while it has none — exactly how ``/gesjobs`` answers place a job in a range.
    #: Served by indexes on (project, status, end_time) and (project, status, begin_time), so an
    #: answer reads the rows it shows, not days of history around them.
    placed_since: datetime | None = None
    placed_until: datetime | None = None
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class Health:
    """Figures for ``/gesjobs status``, the Home tab and ``/healthz``."""

    polls: tuple[PollState, ...]
    #: Pending rows for Slack, and the oldest one's age; group-bot sinks' rows are counted per
    #: sink by ``sink_backlog``.
    outbox_pending: int
    outbox_dead: int
    oldest_pending_at: datetime | None
    broken_subscriptions: tuple[Subscription, ...]


@dataclass(frozen=True, slots=True)
class DigestItem:
    """A digest waiting to be sent (or sent): one per channel and period."""

    id: int
    channel: str
    period: str
    due_at: datetime
    since: datetime
    schedule: DigestSchedule
    state: str
    attempts: int
    created_at: datetime
    ts: str | None = None
    sent_at: datetime | None = None
    last_error: str | None = None


class DigestState:
    PENDING = "pending"
    SENT = "sent"
    #: Nothing ran and the schedule is not ``always``: nothing was posted.
    QUIET = "quiet"
    DEAD = "dead"


class Leases(Protocol):
    """Coordination between replicas: named leases with a time to live."""

    async def try_lease(self, name: str, holder: str, now: datetime, ttl_seconds: float) -> bool:
        """Take or renew the named lease if free, expired, or already ours."""
        ...

    async def release_lease(self, name: str, holder: str) -> None: ...


class SubscriptionReader(Protocol):
    async def subscriptions(self, channel: str | None = None) -> list[Subscription]:
        """Database subscriptions (config-file ones are not stored; callers merge them)."""
        ...


class WatchStore(SubscriptionReader, Leases, Protocol):
    """What a poll tick (``watch.poller``) reads and writes."""

    async def poll_state(self, project: str) -> PollState | None: ...

    async def active_snapshots(self, project: str) -> dict[str, Snapshot]:
        """Snapshots whose status is pending or running."""
        ...

    async def snapshots(self, project: str, job_ids: Collection[str]) -> dict[str, Snapshot]:
        """Snapshots of ``job_ids`` (any number: the store splits them under the database's caps)."""
        ...

    async def job_ids_with_status(self, project: str, status: str) -> set[str]:
        """Ids of the project's snapshots currently in ``status``."""
        ...

    async def outcomes(self, project: str, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], Outcome]:
        """Last terminal outcome per (graph, job_name) (any number of keys)."""
        ...

    async def commit_tick(self, tick: TickResult) -> TickCommit: ...

    async def record_poll_error(self, project: str, at: datetime, error: str, *, kind: str | None = None) -> None:
        """Count a failed tick: ``error`` (a sentence), its ``kind`` and, for the first failure in
        a row, ``failing_since``."""
        ...

    async def mutes(self, now: datetime, channel: str | None = None) -> list[Mute]:
        """Mutes still in force at ``now``."""
        ...


class SubscriptionStore(SubscriptionReader, Protocol):
    """What ``/gesjobs subscribe``, ``mute`` and their buttons change."""

    async def add_subscription(self, sub: Subscription) -> Subscription:
        """Insert, or replace the same (channel, graph_pattern, project); returns it with its id."""
        ...

    async def remove_subscription(self, channel: str, graph_pattern: str, project: str | None = None) -> int:
        """Remove the channel's subscriptions to ``graph_pattern`` (only the one for ``project`` if given)."""
        ...

    async def mark_channel_broken(self, channel: str, error: str | None, now: datetime) -> list[Subscription]:
        """Set (or clear with ``None``) ``broken`` on every subscription of the channel, as of ``now``;
        returns them."""
        ...

    async def mutes(self, now: datetime, channel: str | None = None) -> list[Mute]:
        """Mutes still in force at ``now``."""
        ...

    async def add_mute(self, mute: Mute) -> Mute:
        """Insert, or extend the channel's mute with the same ``graph_pattern`` and ``exact`` (one
        row per key: it ends at the later end); deletes mutes that ended by ``mute.created_at``."""
        ...

    async def purge_mutes(self, before: datetime) -> int:
        """Delete mutes that ended at or before ``before``; returns how many."""
        ...

    async def remove_mutes(self, channel: str, graph_pattern: str) -> int: ...


class OutboxRecords(Protocol):
    """How a worker settles an outbox row it claimed — the Slack worker and the sink worker alike."""

    async def mark_sent(
        self,
        outbox_id: int,
        ts: str,
        now: datetime,
        posted: PostedMessage | None,
        *,
        worker: str | None = None,
        replies: Sequence[ThreadReply] = (),
        rest: Delivery | None = None,
        lease_seconds: float = 0.0,
    ) -> MarkedSent:
        """In one transaction: record a pending row as sent with Slack's ``ts``, remember ``posted``,
        and write the rows that continue it — ``rest`` (what is left of its delivery) and
        ``replies`` (each a row carrying this row's delivery) — claimed by ``worker`` for
        ``lease_seconds`` when both are given, else due at once. With ``worker`` this applies only
        while the row is pending and claimed by that worker; otherwise nothing is written."""
        ...

    async def mark_retry(
        self, outbox_id: int, error: str, next_attempt_at: datetime, *, worker: str | None = None
    ) -> bool:
        """Hand a pending row back, due at ``next_attempt_at``; fenced by ``worker`` as ``mark_sent``.
        Returns whether the row was changed."""
        ...

    async def mark_dead(self, outbox_id: int, error: str, now: datetime, *, worker: str | None = None) -> bool:
        """Give a pending row up; fenced by ``worker`` as ``mark_sent``. Returns whether it was changed."""
        ...


class OutboxStore(OutboxRecords, SubscriptionReader, Protocol):
    """What the delivery worker (``notify.delivery``) claims, records and follows up."""

    async def claim_outbox(
        self,
        worker: str,
        now: datetime,
        limit: int,
        lease_seconds: float,
        *,
        per_channel: int | None = None,
        busy: Collection[str] = (),
    ) -> list[OutboxItem]:
        """Due pending rows (``next_attempt_at <= now``), oldest first, leased to ``worker``. With
        ``per_channel``: at most that many (the oldest due) of each channel, and none of a channel
        in which another worker holds a live claim; rows of the ``busy`` channels are left alone.
        Rows for group-bot sinks are left to :meth:`SinkOutboxStore.claim_sink_outbox`."""
        ...

    async def renew_claims(
        self, worker: str, outbox_ids: Collection[int], now: datetime, lease_seconds: float
    ) -> set[int]:
        """The heartbeat of a live worker: extend its claims on ``outbox_ids`` to ``now +
        lease_seconds``. Only rows still pending and claimed by ``worker`` are renewed (a claim
        another worker took, or a row settled meanwhile, is left alone); returns their ids."""
        ...

    async def enqueue(self, deliveries: Sequence[Delivery], now: datetime) -> tuple[int, ...]:
        """Outbox rows outside a tick (e.g. a notice to a person about a broken channel)."""
        ...

    async def message_for_failure(self, channel: str, project: str, job_id: str) -> PostedMessage | None:
        """The message posted to ``channel`` that reported the failure of ``project``'s job ``job_id``
        (the newest, should it have been posted twice), or ``None``."""
        ...

    async def mark_message_recovered(self, channel: str, ts: str) -> None: ...

    async def outbox_item(self, outbox_id: int) -> OutboxItem | None: ...

    async def mark_channel_broken(self, channel: str, error: str | None, now: datetime) -> list[Subscription]:
        """Set (or clear with ``None``) ``broken`` on every subscription of the channel, as of ``now``;
        returns them."""
        ...


class SinkOutboxStore(OutboxRecords, Protocol):
    """What the group-bot sink worker (``sinks.worker``) claims and records: only rows whose target
    is a sink (``Delivery.channel`` = ``"sink:<name>"``)."""

    async def claim_sink_outbox(self, worker: str, now: datetime, limit: int, lease_seconds: float) -> list[OutboxItem]:
        """Due pending sink rows, oldest first, leased to ``worker`` (as ``claim_outbox``)."""
        ...

    async def sink_backlog(self) -> dict[str, tuple[int, str | None]]:
        """Per sink target (``sink:<name>``) with pending rows: how many, and the newest row's last
        error (``None`` when it was never tried)."""
        ...


class QueryStore(Protocol):
    """What ``/gesjobs`` answers, the Home tab and ``/healthz`` read."""

    async def poll_state(self, project: str) -> PollState | None: ...

    async def query_jobs(self, query: JobQuery) -> list[Snapshot]: ...

    async def recent_events(self, since: datetime, kinds: Collection[EventKind], limit: int) -> list[JobEvent]: ...

    async def health(self, now: datetime) -> Health: ...


class DigestStore(Protocol):
    """Digests: schedules set from Slack and the digest outbox (``ges_bot.digests``)."""

    async def digest_schedules(self, channel: str | None = None) -> list[DigestSchedule]:
        """Digest schedules set from Slack (config-file ones are not stored)."""
        ...

    async def set_digest_schedule(self, schedule: DigestSchedule) -> DigestSchedule:
        """Insert or replace the channel's schedule (one per channel)."""
        ...

    async def remove_digest_schedule(self, channel: str) -> int: ...

    async def enqueue_digest(self, schedule: DigestSchedule, due_at: datetime, now: datetime) -> int | None:
        """A pending digest row for the channel's period ending at ``due_at``, unless one exists
        already (then ``None``: the unique (channel, period) key makes this once-only). Its
        ``since`` is the previous digest's due time, or one period before ``due_at``."""
        ...

    async def claim_digests(
        self, worker: str, now: datetime, lease_seconds: float, channel: str | None = None
    ) -> list[DigestItem]:
        """Due pending digests, leased to ``worker``; a row another worker holds is skipped."""
        ...

    async def finish_digest(
        self, digest_id: int, worker: str, state: str, now: datetime, *, ts: str | None = None, error: str | None = None
    ) -> bool:
        """Record a claimed digest as sent / quiet / dead; fenced by ``worker`` like ``mark_sent``."""
        ...

    async def retry_digest(self, digest_id: int, worker: str, error: str, next_attempt_at: datetime) -> bool: ...

    async def digests(self, channel: str) -> list[DigestItem]:
        """The channel's digests, newest first (for tests and ``/gesjobs digest``)."""
        ...


class Store(WatchStore, SubscriptionStore, OutboxStore, SinkOutboxStore, QueryStore, DigestStore, Protocol):
    """Persistence for ges-bot: every caller's protocol at once, as the runtime holds it. All
    methods are coroutines; all datetimes are aware UTC; callers pass ``now``."""

    async def close(self) -> None: ...
