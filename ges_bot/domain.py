"""Frozen value types shared by every layer: jobs, import files, events, subscriptions, mutes.

This module owns the vocabulary of ges-bot. It does no I/O and knows nothing of the wire format
(``jobcenter.wire`` converts GES JSON into these types) nor of storage or Slack. Times are always
timezone-aware UTC ``datetime`` objects.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class JobStatus(StrEnum):
    """Job status as the job center *answers* it (the response vocabulary)."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    PARTIALLY_FAILED = "partiallyFailed"
    FAILED = "failed"


#: Statuses after which a job never changes again.
TERMINAL_STATUSES: frozenset[str] = frozenset({JobStatus.SUCCESS, JobStatus.PARTIALLY_FAILED, JobStatus.FAILED})
#: Statuses of a job that is still in flight (and so must be followed every tick).
ACTIVE_STATUSES: frozenset[str] = frozenset({JobStatus.PENDING, JobStatus.RUNNING})
KNOWN_STATUSES: frozenset[str] = frozenset(s.value for s in JobStatus)

#: Words other GES APIs use for the job list's outcomes, by lower case: per-file import status says
#: ``partFailed``, other job APIs ``complete``; any case of these counts. Only the terminal words:
#: an active status in another case is not taken for one (it is an unknown outcome, and alerts).
_OUTCOME_WORDS: dict[str, JobStatus] = {
    "success": JobStatus.SUCCESS,
    "complete": JobStatus.SUCCESS,
    "failed": JobStatus.FAILED,
    "partiallyfailed": JobStatus.PARTIALLY_FAILED,
    "partfailed": JobStatus.PARTIALLY_FAILED,
}


def outcome_of(status: str) -> JobStatus | None:
    """The documented outcome a job status means (``Failed`` → failed, ``partFailed`` → partially
    failed, ``complete`` → success), or ``None`` for an active or unknown status."""
    return _OUTCOME_WORDS.get(status.lower())


class QueryStatus(StrEnum):
    """Job status as the job center's ``status`` query parameter *accepts* it (request vocabulary).

    The request side says ``waiting`` where responses say ``pending``.
    """

    RUNNING = "running"
    WAITING = "waiting"
    SUCCESS = "success"
    PARTIALLY_FAILED = "partiallyFailed"
    FAILED = "failed"


class FileKind(StrEnum):
    """Which part of an import a file belongs to (``job_detail`` key)."""

    SCHEMA = "schema"
    VERTEX = "vertex"
    EDGE = "edge"


class FileStatus(StrEnum):
    SUCCESS = "success"
    FAILED = "failed"
    PART_FAILED = "partFailed"


@dataclass(frozen=True, slots=True)
class FileImport:
    """One file of an ``ImportGraph`` job (an item of schema_path / vertexset_path / edgeset_path).

    Line counts are ``None`` when unknown (GES sends ``-1`` or omits them).
    ``status`` keeps unknown values as sent.
    """

    kind: FileKind
    path: str | None = None
    status: str | None = None
    cause: str | None = None
    log: str | None = None
    total_lines: int | None = None
    failed_lines: int | None = None
    successful_lines: int | None = None

    @property
    def is_problem(self) -> bool:
        """True when this file did not import cleanly."""
        return self.status in (FileStatus.FAILED, FileStatus.PART_FAILED) or bool(
            self.failed_lines and self.failed_lines > 0
        )


@dataclass(frozen=True, slots=True)
class Job:
    """One job of the job center, as ges-bot understands it.

    ``status`` is a plain string, exactly as GES sent it, so that a status GES invents tomorrow is
    kept, recorded and shown, never a crash; :attr:`outcome` is what it means when it is a known
    outcome or a synonym of one (``Failed``, ``partFailed``, ``complete``).
    ``files`` is empty for jobs without ``job_detail`` (everything but imports).
    """

    job_id: str
    status: str
    job_type: str | None = None
    job_name: str | None = None
    graph: str | None = None
    begin_time: datetime | None = None
    end_time: datetime | None = None
    fail_reason: str | None = None
    progress: float | None = None
    files: tuple[FileImport, ...] = ()

    @property
    def outcome(self) -> JobStatus | None:
        """success, failed or partiallyFailed (a synonym of one included); ``None`` otherwise."""
        return outcome_of(self.status)

    @property
    def is_terminal(self) -> bool:
        """Ended in a known outcome (or a synonym of one)."""
        return self.outcome is not None

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def is_known_status(self) -> bool:
        return self.status in KNOWN_STATUSES

    @property
    def is_unknown_status(self) -> bool:
        """Neither in flight nor a known outcome: a status ges-bot does not know (``cancelled``…)."""
        return not self.is_active and not self.is_terminal

    @property
    def problem_files(self) -> tuple[FileImport, ...]:
        return tuple(f for f in self.files if f.is_problem)


class EventKind(StrEnum):
    """What happened to a job between two polls."""

    FAILED = "failed"
    PARTIALLY_FAILED = "partially_failed"
    SUCCEEDED = "succeeded"
    #: A success of a graph's job whose previous run of the same ``job_name`` failed.
    RECOVERED = "recovered"
    #: Running or pending for longer than the configured threshold (once per job).
    STUCK = "stuck"
    #: Left pending/running for a status ges-bot does not know (``cancelled``, …): alerted like a
    #: failure, with the raw status shown, so a new GES status cannot hide one.
    UNKNOWN_OUTCOME = "unknown_outcome"
    #: Any other transition (pending → running, unknown → another unknown …): recorded, never alerted.
    STATUS_CHANGED = "status_changed"


#: Event kinds a subscription may ask for; ``status_changed`` is history only.
ALERTABLE_KINDS: frozenset[EventKind] = frozenset(
    {
        EventKind.FAILED,
        EventKind.PARTIALLY_FAILED,
        EventKind.UNKNOWN_OUTCOME,
        EventKind.SUCCEEDED,
        EventKind.RECOVERED,
        EventKind.STUCK,
    }
)
DEFAULT_SUBSCRIPTION_KINDS: frozenset[EventKind] = frozenset(
    {EventKind.FAILED, EventKind.PARTIALLY_FAILED, EventKind.UNKNOWN_OUTCOME}
)
#: Kinds that are (or may be) failures: their alerts are what a later recovery replies to.
FAILURE_KINDS: frozenset[EventKind] = frozenset(
    {EventKind.FAILED, EventKind.PARTIALLY_FAILED, EventKind.UNKNOWN_OUTCOME}
)


#: User-facing words for subscription statuses → event kinds.
_STATUS_WORDS: dict[str, frozenset[EventKind]] = {
    "failed": frozenset({EventKind.FAILED}),
    "partiallyfailed": frozenset({EventKind.PARTIALLY_FAILED}),
    "partially_failed": frozenset({EventKind.PARTIALLY_FAILED}),
    "partially-failed": frozenset({EventKind.PARTIALLY_FAILED}),
    "partial": frozenset({EventKind.PARTIALLY_FAILED}),
    "succeeded": frozenset({EventKind.SUCCEEDED, EventKind.RECOVERED}),
    "success": frozenset({EventKind.SUCCEEDED, EventKind.RECOVERED}),
    "recovered": frozenset({EventKind.RECOVERED}),
    "stuck": frozenset({EventKind.STUCK}),
    "unknown": frozenset({EventKind.UNKNOWN_OUTCOME}),
    "unknown_outcome": frozenset({EventKind.UNKNOWN_OUTCOME}),
    "unknown-outcome": frozenset({EventKind.UNKNOWN_OUTCOME}),
    "all": ALERTABLE_KINDS,
}


def kinds_from_words(words: list[str] | tuple[str, ...]) -> frozenset[EventKind]:
    """Subscription status words (``failed``, ``partial``, ``unknown``, ``succeeded``,
    ``recovered``, ``stuck``, ``all``) → event kinds; none → the default (failed, partial,
    unknown). Raises ``ValueError`` naming the bad word."""
    kinds: set[EventKind] = set()
    for word in words:
        found = _STATUS_WORDS.get(word.strip().lower())
        if found is None:
            allowed = ", ".join(sorted({"failed", "partial", "unknown", "succeeded", "recovered", "stuck", "all"}))
            raise ValueError(f"unknown status {word!r}; use any of: {allowed}")
        kinds |= found
    return frozenset(kinds) if kinds else DEFAULT_SUBSCRIPTION_KINDS


@dataclass(frozen=True, slots=True)
class JobEvent:
    """A transition worth recording, produced by ``watch.diff``.

    ``dedup_key`` is unique forever: (project, job_id, status) — or ``stuck`` instead of the
    status for the stuck event — so that no transition is ever reported twice, across restarts
    and replicas. ``at`` is the tick time at which the transition was observed.
    """

    project: str
    kind: EventKind
    job: Job
    at: datetime
    previous_status: str | None = None
    #: For ``recovered``: the job id of the failure this success recovers from.
    recovers_job_id: str | None = None

    @property
    def dedup_key(self) -> str:
        marker = "stuck" if self.kind is EventKind.STUCK else self.job.status
        return f"{self.project}\x1f{self.job.job_id}\x1f{marker}"

    @property
    def graph(self) -> str:
        return self.job.graph or ""


def graph_matches(pattern: str, graph: str) -> bool:
    """Whether a subscription or mute pattern (exact name, glob such as ``prod-*``, or ``*``)
    matches a graph name. Case-sensitive, as GES graph names are."""
    if pattern == "*":
        return True
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(graph, pattern)
    return pattern == graph


#: The languages alerts, digests and ops messages are written in; English is the default.
LANGUAGES: tuple[str, ...] = ("en", "zh-CN")

_LANGUAGE_WORDS = {
    "en": "en",
    "en-us": "en",
    "en-gb": "en",
    "english": "en",
    "zh-cn": "zh-CN",
    "zh_cn": "zh-CN",
    "zh": "zh-CN",
    "zh-hans": "zh-CN",
    "zh-hans-cn": "zh-CN",
    "chinese": "zh-CN",
    "中文": "zh-CN",
    "简体中文": "zh-CN",
}


def language_of(word: str) -> str | None:
    """The language a user's word names (``zh-CN`` for ``zh-cn``, ``zh``, ``中文`` …), or ``None``."""
    return _LANGUAGE_WORDS.get(word.strip().lower())


@dataclass(frozen=True, slots=True)
class Subscription:
    """A channel's wish to hear about some graphs.

    ``source`` is ``"db"`` for subscriptions made from Slack and ``"config"`` for those declared
    in the ``GES_BOT_CONFIG`` file (read-only in Slack; their ``id`` is negative).
    ``broken`` holds the Slack error that made delivery to the channel impossible, if any.
    ``locale`` is the language its alerts are written in (``en`` or ``zh-CN``; a sink's own
    ``locale`` decides for ``sink:`` targets).
    """

    id: int
    channel: str
    graph_pattern: str
    kinds: frozenset[EventKind] = DEFAULT_SUBSCRIPTION_KINDS
    team: str | None = None
    project: str | None = None
    job_names: frozenset[str] = frozenset()
    created_by: str | None = None
    created_at: datetime | None = None
    source: str = "db"
    broken: str | None = None
    locale: str = "en"

    def matches(self, event: JobEvent) -> bool:
        """Whether this subscription asks for ``event`` (ignoring mutes)."""
        if event.kind not in self.kinds:
            return False
        if self.project is not None and self.project != event.project:
            return False
        if self.job_names and (event.job.job_name or "") not in self.job_names:
            return False
        return graph_matches(self.graph_pattern, event.graph)


#: Graph names unlike one another: a pattern matching all of them matches, for all purposes,
#: every graph (``*``, ``?*``, ``[!x]*`` …).
_PROBE_GRAPHS = ("a", "Z", "9", "_", "-", ".", "x" * 40, "prod-movies_2026", "图数据", "[*]?")


def covers_every_graph(pattern: str) -> bool:
    """Whether a (non-exact) mute or subscription pattern matches every graph name."""
    return all(graph_matches(pattern, name) for name in _PROBE_GRAPHS)


@dataclass(frozen=True, slots=True)
class Mute:
    """Alerts for graphs matching ``graph_pattern`` in ``channel`` are suppressed until ``until``.

    ``exact`` mutes (from an alert's Mute button) name one graph and match only it, whatever
    characters its name contains; the others are patterns, as typed in ``/gesjobs mute``."""

    id: int
    channel: str
    graph_pattern: str
    until: datetime
    created_by: str | None = None
    created_at: datetime | None = None
    exact: bool = False

    def matches(self, graph: str) -> bool:
        return graph == self.graph_pattern if self.exact else graph_matches(self.graph_pattern, graph)

    def silences(self, channel: str, graph: str, now: datetime) -> bool:
        return self.channel == channel and now < self.until and self.matches(graph)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One Slack message to send: every event of one graph from one tick, for one channel.

    ``routing`` produces these; the store turns each into an outbox row in the same
    transaction as the events. ``locale`` is the language routing chose for it (``en`` or
    ``zh-CN``), kept in the outbox row so that every replica renders it alike.
    """

    channel: str
    project: str
    graph: str
    events: tuple[JobEvent, ...]
    team: str | None = None
    subscription_ids: tuple[int, ...] = ()
    locale: str = "en"


@dataclass(frozen=True, slots=True)
class MutedDelivery:
    """A delivery that a mute suppressed: recorded so that ``status`` and the Home tab can say so."""

    delivery: Delivery
    mute_id: int


@dataclass(frozen=True, slots=True)
class ProjectInfo:
    """What rendering needs to know about a GES project (never its credentials)."""

    alias: str
    project_id: str
    region: str | None = None
    endpoint: str | None = None
