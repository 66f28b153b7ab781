"""The store's tables (SQLAlchemy Core), shared by ``store.sql`` and the Alembic migrations.

This module owns the schema: table and column names, keys, indexes and the UTC time type. The
migrations in ``store/migrations/versions`` must build exactly this schema (a test compares them
with Alembic's autogenerate). It holds no queries.

Text that comes from GES (names, reasons, statuses) is ``Text``, never a bounded ``VARCHAR``, so a
long value is stored rather than failing a whole tick on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC ``datetime`` on the way in and out, on every dialect.

    PostgreSQL keeps ``timestamptz``; SQLite keeps text without an offset, so values are converted to
    UTC before writing (text comparisons then order correctly) and given ``tzinfo=UTC`` on reading.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the store; times must be aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: A growing table's id: 64-bit on PostgreSQL; on SQLite an INTEGER PRIMARY KEY is the rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _time(name: str, *, nullable: bool = True) -> Column[Any]:
    return Column(name, UtcDateTime(), nullable=nullable)


#: The last known state of each job (one row per project × job id).
job_snapshots = Table(
    "job_snapshots",
    metadata,
    Column("project", Text, nullable=False),
    Column("job_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("job_type", Text),
    Column("job_name", Text),
    Column("graph", Text),
    _time("begin_time"),
    _time("end_time"),
    Column("fail_reason", Text),
    Column("progress", Float),
    #: ``FileImport`` list of an import job (``job_detail``), as ``codec.files_to_json``.
    Column("files", JSON, nullable=False),
    _time("first_seen", nullable=False),
    _time("last_seen", nullable=False),
    _time("last_change", nullable=False),
    Column("stuck_reported", Boolean, nullable=False),
    PrimaryKeyConstraint("project", "job_id"),
    Index(None, "project", "status"),
    Index(None, "begin_time"),
    # /gesjobs answers place a job by its end time (begin time while it runs): see JobQuery.placed_*.
    Index(None, "project", "status", "end_time"),
    Index(None, "project", "status", "begin_time"),
)

#: Every recorded transition, unique by ``JobEvent.dedup_key`` forever.
job_events = Table(
    "job_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("dedup_key", Text, nullable=False),
    Column("project", Text, nullable=False),
    Column("job_id", Text, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("status", Text, nullable=False),
    Column("previous_status", Text),
    Column("graph", Text, nullable=False),
    Column("job_name", Text),
    _time("at", nullable=False),
    #: The whole job as observed (``codec.job_to_json``), so the event can be re-rendered later.
    Column("job", JSON, nullable=False),
    Column("recovers_job_id", Text),
    UniqueConstraint("dedup_key"),
    Index(None, "at"),
    Index(None, "project", "job_id"),
)

#: The last terminal result per (project, graph, job_name), for ``recovered``.
outcomes = Table(
    "outcomes",
    metadata,
    Column("project", Text, nullable=False),
    Column("graph", Text, nullable=False),
    Column("job_name", Text, nullable=False),
    Column("job_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    _time("at", nullable=False),
    PrimaryKeyConstraint("project", "graph", "job_name"),
)

#: Per project: baseline, last success/attempt/error and the poller's cursor.
poll_state = Table(
    "poll_state",
    metadata,
    Column("project", Text, nullable=False),
    _time("baselined_at"),
    _time("last_success_at"),
    _time("last_attempt_at"),
    Column("last_error", Text),
    Column("consecutive_failures", Integer, nullable=False),
    Column("cursor", JSON, nullable=False),
    #: What kind of error the last failure was (``watch.blindness.ErrorKind``: ``auth``, ``server`` …).
    Column("last_error_kind", String(32)),
    #: The first failure of the current run of failures (``NULL`` after a success): blind since when.
    _time("failing_since"),
    PrimaryKeyConstraint("project"),
)

#: Subscriptions made from Slack. ``project`` is ``''`` for "any project" so that the unique key
#: works on both databases (NULLs never collide in a unique constraint).
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("team", String(32)),
    Column("channel", String(64), nullable=False),
    Column("graph_pattern", Text, nullable=False),
    #: Sorted list of ``EventKind`` values.
    Column("kinds", JSON, nullable=False),
    Column("project", Text, nullable=False),
    #: Sorted list of job names; empty for "any".
    Column("job_names", JSON, nullable=False),
    Column("created_by", String(64)),
    _time("created_at"),
    #: The Slack error that made delivery to the channel impossible, if any.
    Column("broken", Text),
    _time("broken_at"),
    #: The language of the alerts (``en``, ``zh-CN``); rows from before 0008 are English.
    Column("locale", String(16), nullable=False, server_default="en"),
    UniqueConstraint("channel", "graph_pattern", "project"),
)

mutes = Table(
    "mutes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel", String(64), nullable=False),
    Column("graph_pattern", Text, nullable=False),
    _time("until", nullable=False),
    Column("created_by", String(64)),
    _time("created_at"),
    #: True: ``graph_pattern`` is one graph's name, matched exactly (mute buttons); else a pattern.
    Column("exact", Boolean, nullable=False, server_default=false()),
    Index(None, "channel", "until"),
)

#: Slack messages to send: one row per ``Delivery``, with claim and retry bookkeeping.
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("channel", String(64), nullable=False),
    Column("team", String(32)),
    Column("project", Text, nullable=False),
    Column("graph", Text, nullable=False),
    #: The delivery's events, as ``codec.events_to_json``.
    Column("events", JSON, nullable=False),
    Column("subscription_ids", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    _time("created_at", nullable=False),
    _time("next_attempt_at", nullable=False),
    Column("claimed_by", Text),
    _time("claimed_until"),
    Column("last_error", Text),
    Column("ts", String(32)),
    _time("sent_at"),
    _time("dead_at"),
    #: A thread reply (an alert's overflow, written when the alert was marked sent): the alert's
    #: row, the reply's place among its replies (1, 2 …), the alert's Slack ``ts`` to reply under,
    #: and the reply as rendered (``{"text": …, "blocks": […]}``), posted as it is. ``NULL`` on alerts.
    Column("parent_id", BigId),
    Column("part", Integer),
    Column("thread_ts", String(32)),
    Column("message", JSON(none_as_null=True)),
    #: The language routing chose (``Delivery.locale``), so every replica renders the same words.
    Column("locale", String(16), nullable=False, server_default="en"),
    Index(None, "state", "next_attempt_at"),
)

#: Messages we posted, for threading recoveries under them and updating them.
posted_messages = Table(
    "posted_messages",
    metadata,
    Column("channel", String(64), nullable=False),
    Column("ts", String(32), nullable=False),
    Column("project", Text, nullable=False),
    Column("graph", Text, nullable=False),
    #: The job names of the message's failures, sorted (its failed job ids: ``posted_message_jobs``).
    Column("job_names", JSON, nullable=False),
    Column("outbox_id", BigId, nullable=False),
    _time("posted_at", nullable=False),
    Column("recovered", Boolean, nullable=False),
    PrimaryKeyConstraint("channel", "ts"),
    Index(None, "channel", "project", "graph", "posted_at"),
)

#: One row per failed job of a posted message: a recovery finds the message that reported the very
#: job it recovers (``JobEvent.recovers_job_id``) with an indexed lookup.
posted_message_jobs = Table(
    "posted_message_jobs",
    metadata,
    Column("channel", String(64), nullable=False),
    Column("ts", String(32), nullable=False),
    Column("job_id", Text, nullable=False),
    PrimaryKeyConstraint("channel", "ts", "job_id"),
    ForeignKeyConstraint(["channel", "ts"], ["posted_messages.channel", "posted_messages.ts"], ondelete="CASCADE"),
    Index(None, "channel", "job_id"),
)

#: Deliveries a mute suppressed (history for ``status`` and the Home tab).
muted_deliveries = Table(
    "muted_deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("mute_id", Integer, nullable=False),
    Column("channel", String(64), nullable=False),
    Column("team", String(32)),
    Column("project", Text, nullable=False),
    Column("graph", Text, nullable=False),
    Column("events", JSON, nullable=False),
    _time("muted_at", nullable=False),
    Index(None, "channel", "muted_at"),
)

#: Named leases between replicas (poller per project, the SQLite instance guard).
leases = Table(
    "leases",
    metadata,
    Column("name", Text, nullable=False),
    Column("holder", Text, nullable=False),
    _time("expires_at", nullable=False),
    PrimaryKeyConstraint("name"),
)

#: The bot's own health problems posted to the ops channel (``notify.ops``): one row per
#: (kind, subject), e.g. (``blind``, project alias). It records the Slack message (``ts``) so an
#: incident is posted once, updated while it lasts and answered in its thread when it ends — by
#: whichever replica holds the ``ops`` lease, across restarts.
ops_incidents = Table(
    "ops_incidents",
    metadata,
    Column("kind", String(32), nullable=False),
    Column("subject", Text, nullable=False),
    #: ``open`` → ``resolved`` (recovered; the thread reply is still to post) → ``closed``.
    Column("state", String(16), nullable=False),
    _time("since", nullable=False),
    Column("cause", Text, nullable=False),
    Column("fix", Text, nullable=False),
    #: Figures the decision keeps between rounds (e.g. the dead-row count when it opened).
    Column("detail", JSON, nullable=False),
    Column("channel", String(80)),
    Column("ts", String(32)),
    #: The text last posted or updated, so an unchanged incident is not updated again.
    Column("posted_text", Text),
    _time("posted_at"),
    _time("updated_at"),
    _time("resolved_at"),
    Column("resolution", Text),
    PrimaryKeyConstraint("kind", "subject"),
)

#: A channel's digest schedule set from Slack (``[[digests]]`` in the config file are not stored).
digest_schedules = Table(
    "digest_schedules",
    metadata,
    Column("channel", String(64), nullable=False),
    Column("team", String(32)),
    #: 0 = Monday … 6 = Sunday; ``NULL``: every day.
    Column("weekday", Integer),
    #: Minutes after local midnight.
    Column("at_minute", Integer, nullable=False),
    #: IANA zone of the subscriber, in which ``at_minute`` is read.
    Column("tz", Text, nullable=False),
    Column("always", Boolean, nullable=False),
    Column("created_by", String(64)),
    _time("created_at", nullable=False),
    #: The language of the digest (``en``, ``zh-CN``).
    Column("locale", String(16), nullable=False, server_default="en"),
    PrimaryKeyConstraint("channel"),
)

#: Digests to send: one row per channel and period (unique), so replicas and restarts send each
#: digest once; claimed, retried and marked sent like the alert outbox, but built when sent.
digest_outbox = Table(
    "digest_outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("channel", String(64), nullable=False),
    #: ``daily 2026-11-30T09:00+08:00``: the schedule kind and the local due time.
    Column("period", String(64), nullable=False),
    _time("due_at", nullable=False),
    #: Where the digest's period begins (the previous digest's due time).
    _time("since", nullable=False),
    #: The schedule as it was when the digest fell due (``{"weekday", "at_minute", "tz", "always"}``).
    Column("schedule", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    _time("created_at", nullable=False),
    _time("next_attempt_at", nullable=False),
    Column("claimed_by", Text),
    _time("claimed_until"),
    Column("last_error", Text),
    Column("ts", String(32)),
    _time("sent_at"),
    UniqueConstraint("channel", "period"),
    Index(None, "state", "next_attempt_at"),
)
