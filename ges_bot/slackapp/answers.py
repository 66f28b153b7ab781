"""What a ``/gesjobs`` question is answered with: plain records, no I/O.

:mod:`ges_bot.slackapp.queries` (which talks to GES and the store) builds them;
:mod:`ges_bot.slackapp.views` (pure Block Kit) draws them. They live here, apart from both, so
that the views stay pure: importing the records must not import an HTTP client or a database.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from ges_bot.domain import Job
from ges_bot.slackapp.commands import Query

__all__ = ["FoundJob", "JobLookup", "JobsAnswer", "QueryProblem", "Source", "SourceKind", "in_range", "job_time"]


class SourceKind(StrEnum):
    LIVE = "live"
    #: GES was not asked because the last successful poll is recent enough (``fresh_within``).
    RECENT = "recent"
    SNAPSHOTS = "snapshots"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Source:
    """Where one project's part of an answer came from.

    ``reason`` says why GES was not used (for ``snapshots``) or what went wrong (for ``error``);
    ``as_of`` is the last successful poll behind the snapshots. Both are sentences for people
    and may quote GES (untrusted: views escape them).
    """

    project: str
    kind: SourceKind
    reason: str | None = None
    as_of: datetime | None = None
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class FoundJob:
    project: str
    job: Job


@dataclass(frozen=True, slots=True)
class JobsAnswer:
    """Every job matching a query, newest first, and where each project's part came from."""

    query: Query
    zone: str
    start: datetime | None
    end: datetime | None
    jobs: tuple[FoundJob, ...]
    sources: tuple[Source, ...]

    @property
    def counts(self) -> dict[str, int]:
        """Jobs per status (statuses as GES answered them)."""
        return dict(Counter(found.job.status for found in self.jobs))

    @property
    def failed_sources(self) -> tuple[Source, ...]:
        return tuple(s for s in self.sources if s.kind is SourceKind.ERROR)

    @property
    def snapshot_sources(self) -> tuple[Source, ...]:
        return tuple(s for s in self.sources if s.kind is SourceKind.SNAPSHOTS)


@dataclass(frozen=True, slots=True)
class JobLookup:
    """One job for ``/gesjobs job <id>`` and where its state came from."""

    project: str
    job: Job
    source: Source


@dataclass(frozen=True, slots=True)
class QueryProblem:
    """The question could not be answered; ``message`` says why and what to do (plain text)."""

    message: str
    choices: tuple[str, ...] = field(default_factory=tuple)


def job_time(job: Job) -> datetime | None:
    """The instant a job is placed at: when it ended, or when it began while it has no end."""
    return job.end_time if job.end_time is not None else job.begin_time


def in_range(job: Job, start: datetime | None, end: datetime | None) -> bool:
    """Whether the job falls in ``[start, end)`` (no bounds: always)."""
    if start is None and end is None:
        return True
    when = job_time(job)
    if when is None:
        return False
    return (start is None or when >= start) and (end is None or when < end)
