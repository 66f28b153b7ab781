"""What an alert says, before any chat platform shapes it: the neutral alert document.

Routing decides *who* hears about *what* (a :class:`~ges_bot.domain.Delivery`: one channel, one
graph, one tick's events). This module decides *what to say* — pure, from the delivery, the
project and ``now``:

- a headline (the most severe kind, and how many events of each kind, most severe first);
- one :class:`AlertItem` per event: its kind, the job, the facts as typed :class:`Field`\\ s
  (graph, job id, type, project, status, times — values, not markup), the fail reason, and the
  import files with problems (failed first, then partly failed, each with its cause and log)
  with a tally of the rest;
- the :class:`Action`\\ s a reader may take (details, mute the graph for a while, acknowledge);
- the :class:`Thread` relation (a message of its own, or a reply in the thread of the failure it
  recovers).

A renderer turns the document into a platform's payload; :mod:`ges_bot.notify.render` is the Slack
(Block Kit) one and owns everything Slack-shaped: markup, escaping, emoji, date tokens, size
budgets, button values, what overflows into thread replies. Another chat (Lark, DingTalk, WeCom,
Teams) is another renderer over this same document: routing, the store and delivery's retries do
not change. Nothing here escapes, truncates or formats text; every string is as ``jobcenter.wire``
read it from GES (control characters replaced and length bounded there, once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from ges_bot.domain import Delivery, EventKind, FileImport, FileStatus, Job, JobEvent, JobStatus, ProjectInfo
from ges_bot.notify.routing import KIND_SEVERITY

__all__ = [
    "MUTE_SPANS",
    "Action",
    "ActionKind",
    "AlertDocument",
    "AlertItem",
    "Field",
    "FieldKey",
    "FileTally",
    "Headline",
    "Thread",
    "ThreadKind",
    "alert_document",
    "alert_item",
    "file_tally",
    "graph_name",
    "job_fields",
    "problems_first",
]

#: How long the mute actions of an alert silence its graph in the channel.
MUTE_SPANS: tuple[timedelta, ...] = (timedelta(hours=1), timedelta(hours=24))


class FieldKey(StrEnum):
    """Which fact of a job a :class:`Field` holds; its :attr:`label` is how people name it."""

    GRAPH = "graph"
    JOB_ID = "job_id"
    TYPE = "type"
    PROJECT = "project"
    STATUS = "status"
    BEGAN = "began"
    WAITING_FOR = "waiting_for"
    RUNNING_FOR = "running_for"
    ENDED = "ended"
    DURATION = "duration"
    RECOVERS = "recovers"

    @property
    def label(self) -> str:
        return _FIELD_LABELS[self]


_FIELD_LABELS: dict[FieldKey, str] = {
    FieldKey.GRAPH: "Graph",
    FieldKey.JOB_ID: "Job id",
    FieldKey.TYPE: "Type",
    FieldKey.PROJECT: "Project",
    FieldKey.STATUS: "Status",
    FieldKey.BEGAN: "Began",
    FieldKey.WAITING_FOR: "Waiting for",
    FieldKey.RUNNING_FOR: "Running for",
    FieldKey.ENDED: "Ended",
    FieldKey.DURATION: "Duration",
    FieldKey.RECOVERS: "Recovers failed job",
}


@dataclass(frozen=True, slots=True)
class Field:
    """One fact of a job, as a value.

    ``text``: an identifier or words from GES (graph, job id, type, status, the recovered job id;
    the project alias) — untrusted, unescaped, ``None`` when unknown. ``detail``: the project's
    region. ``at``: the instant (began, ended) or, for a span still running, the moment it was
    measured. ``span``: a duration (running/waiting for, took).
    """

    key: FieldKey
    text: str | None = None
    detail: str | None = None
    at: datetime | None = None
    span: timedelta | None = None

    @property
    def label(self) -> str:
        return self.key.label


@dataclass(frozen=True, slots=True)
class FileTally:
    """How an import's files fared: failed, partly failed (problems other than failed), imported
    OK, and the rest (no failure reported, status unknown)."""

    failed: int
    partly: int
    ok: int
    other: int

    @property
    def total(self) -> int:
        return self.failed + self.partly + self.ok + self.other


@dataclass(frozen=True, slots=True)
class AlertItem:
    """One event of an alert: what happened to which job, and the facts a reader needs."""

    kind: EventKind
    job: Job
    fields: tuple[Field, ...]
    #: The job's fail reason, ``None`` when GES gave none (or only blanks).
    reason: str | None
    #: The files with problems: failed first, then partly failed, otherwise as GES listed them.
    problem_files: tuple[FileImport, ...]
    tally: FileTally
    #: For a recovery: the failed job it recovers.
    recovers_job_id: str | None = None


@dataclass(frozen=True, slots=True)
class Headline:
    """The alert's headline: its most severe kind (``None`` for an empty alert) and how many events
    of each kind, most severe first."""

    lead: EventKind | None
    counts: tuple[tuple[EventKind, int], ...]


class ActionKind(StrEnum):
    DETAILS = "details"  # every file of ``job_id``
    MUTE = "mute"  # no alerts for ``graph`` in this channel for ``span``
    ACKNOWLEDGE = "acknowledge"  # someone is on it (``job_id``: the alert's first job, if any)


@dataclass(frozen=True, slots=True)
class Action:
    kind: ActionKind
    job_id: str | None = None
    graph: str | None = None
    span: timedelta | None = None


class ThreadKind(StrEnum):
    #: A message of its own in the channel.
    NEW = "new"
    #: A reply in the thread of the message that reported the failure it recovers (delivery finds
    #: that message; without one in this channel the reply stands alone).
    RECOVERY = "recovery"


@dataclass(frozen=True, slots=True)
class Thread:
    kind: ThreadKind
    #: For :attr:`ThreadKind.RECOVERY`: the failed jobs recovered.
    recovers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AlertDocument:
    """Everything an alert says, platform-free. Build it with :func:`alert_document`."""

    project: ProjectInfo
    channel: str
    #: The graph as routed (may be empty: :func:`graph_name` names it for people).
    graph: str
    headline: Headline
    items: tuple[AlertItem, ...]
    actions: tuple[Action, ...]
    thread: Thread
    now: datetime


# -- builders --------------------------------------------------------------------------------


def graph_name(graph: str) -> str:
    """The graph as people are shown it: "(no graph)" for a job that names none."""
    return graph if graph.strip() else "(no graph)"


def job_fields(job: Job, project: ProjectInfo, now: datetime, *, recovers: str | None = None) -> tuple[Field, ...]:
    """The facts of a job, in the order they are shown."""
    fields = [
        Field(FieldKey.GRAPH, text=job.graph),
        Field(FieldKey.JOB_ID, text=job.job_id),
        Field(FieldKey.TYPE, text=job.job_type or None),
        Field(FieldKey.PROJECT, text=project.alias, detail=project.region or None),
        Field(FieldKey.STATUS, text=job.status),
        Field(FieldKey.BEGAN, at=job.begin_time),
    ]
    if job.is_active:
        key = FieldKey.WAITING_FOR if job.status == JobStatus.PENDING else FieldKey.RUNNING_FOR
        span = now - job.begin_time if job.begin_time is not None else None
        fields.append(Field(key, at=now, span=span))
    else:
        fields.append(Field(FieldKey.ENDED, at=job.end_time))
        if job.begin_time is not None and job.end_time is not None:
            fields.append(Field(FieldKey.DURATION, span=job.end_time - job.begin_time))
    if recovers:
        fields.append(Field(FieldKey.RECOVERS, text=recovers))
    return tuple(fields)


def _problem_rank(f: FileImport) -> int:
    if f.status == FileStatus.FAILED:
        return 0
    return 1 if f.is_problem else 2


def problems_first(files: Sequence[FileImport]) -> tuple[FileImport, ...]:
    """Problem files first (failed, then partly failed), the rest after; otherwise as GES listed them."""
    return tuple(sorted(files, key=_problem_rank))


def file_tally(files: Sequence[FileImport]) -> FileTally:
    failed = sum(1 for f in files if f.status == FileStatus.FAILED)
    partly = sum(1 for f in files if f.is_problem) - failed
    ok = sum(1 for f in files if not f.is_problem and f.status == FileStatus.SUCCESS)
    return FileTally(failed=failed, partly=partly, ok=ok, other=len(files) - failed - partly - ok)


def alert_item(event: JobEvent, project: ProjectInfo, now: datetime) -> AlertItem:
    job = event.job
    recovers = event.recovers_job_id if event.kind is EventKind.RECOVERED else None
    reason = job.fail_reason if job.fail_reason and job.fail_reason.strip() else None
    return AlertItem(
        kind=event.kind,
        job=job,
        fields=job_fields(job, project, now, recovers=recovers),
        reason=reason,
        problem_files=tuple(f for f in problems_first(job.files) if f.is_problem),
        tally=file_tally(job.files),
        recovers_job_id=recovers,
    )


def _severity(kind: EventKind) -> int:
    return KIND_SEVERITY.get(kind, len(KIND_SEVERITY))


def _headline(events: Sequence[JobEvent]) -> Headline:
    counts: dict[EventKind, int] = {}
    for event in events:
        counts[event.kind] = counts.get(event.kind, 0) + 1
    lead = min((e.kind for e in events), key=_severity) if events else None
    return Headline(lead=lead, counts=tuple((k, counts[k]) for k in sorted(counts, key=_severity)))


def _actions(delivery: Delivery) -> tuple[Action, ...]:
    primary = delivery.events[0].job if delivery.events else None
    actions: list[Action] = []
    if primary is not None:
        actions.append(Action(ActionKind.DETAILS, job_id=primary.job_id))
    if delivery.graph:
        actions.extend(Action(ActionKind.MUTE, graph=delivery.graph, span=span) for span in MUTE_SPANS)
    actions.append(Action(ActionKind.ACKNOWLEDGE, job_id=primary.job_id if primary is not None else None))
    return tuple(actions)


def _thread(events: Sequence[JobEvent]) -> Thread:
    if events and all(e.kind is EventKind.RECOVERED for e in events):
        return Thread(ThreadKind.RECOVERY, recovers=tuple(e.recovers_job_id for e in events if e.recovers_job_id))
    return Thread(ThreadKind.NEW)


def alert_document(delivery: Delivery, project: ProjectInfo, now: datetime) -> AlertDocument:
    """What the alert for ``delivery`` says (events in the order routing gave them)."""
    return AlertDocument(
        project=project,
        channel=delivery.channel,
        graph=delivery.graph,
        headline=_headline(delivery.events),
        items=tuple(alert_item(e, project, now) for e in delivery.events),
        actions=_actions(delivery),
        thread=_thread(delivery.events),
        now=now,
    )
