"""Answering ``/gesjobs`` questions: the live job center first, the bot's snapshots when GES is down.

This module owns how a parsed :class:`~ges_bot.slackapp.commands.Query` or
:class:`~ges_bot.slackapp.commands.JobDetail` becomes jobs:

- the range is resolved in the asker's zone and widened to GES's day-granular date filter
  (:func:`~ges_bot.slackapp.commands.ges_date_window`); the job center is asked with the narrowest
  filters it understands (one request stream per status, concurrently; ``graph_name`` only for an
  exact name), and the answer is then filtered exactly here (glob patterns, ``type``, the range:
  a job is in range when its ``end_time`` — or ``begin_time`` while it has none — falls inside);
- the client follows the reading of the job list this GES was calibrated to (kept by the poller in
  the poll state; calibrated here when there is none), so listings page, count and filter right
  under every reading (``ges_bot.jobcenter.reading``);
- when GES is unreachable (no answer in time, a transport error, an unreadable, oversized or
  retryable answer) the same question goes to the store's snapshots, and the answer says so and
  how old they are; any other GES error (credentials, a rejected query) becomes a sentence a
  person can act on, never a traceback;
- fair use: past a person's (or everyone's) limit of live questions
  (:class:`~ges_bot.slackapp.fairuse.LiveQueryLimiter`) the question is answered from snapshots,
  saying so and when live answers resume; a job the bot has never seen is looked for only in a
  recent window of GES's list (``lookup_window``) and in at most ``lookup_max_pages`` pages, and
  the answer says when the search stopped there and how to narrow it; identical listings and
  lookups in flight share one GES listing.

It returns plain records (:class:`JobsAnswer`, :class:`JobLookup`, :class:`QueryProblem`, defined
in the pure :mod:`ges_bot.slackapp.answers`); ``slackapp.views`` turns them into Block Kit. It must not render, ack, or talk to Slack.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

from ges_bot.clock import Clock, utc_now
from ges_bot.domain import TERMINAL_STATUSES, Job, graph_matches
from ges_bot.errors import (
    ApiError,
    AuthError,
    JobCenterError,
    QueryError,
    ResponseError,
    StoreError,
    TransportError,
)
from ges_bot.jobcenter.client import JobCenterClient, JobList, ListQuery
from ges_bot.jobcenter.reading import Reading
from ges_bot.services import Services
from ges_bot.slackapp.answers import (
    FoundJob,
    JobLookup,
    JobsAnswer,
    QueryProblem,
    Source,
    SourceKind,
    in_range,
    job_time,
)
from ges_bot.slackapp.commands import JobDetail, Query, ges_date_window, resolve
from ges_bot.slackapp.fairuse import Admission, LiveQueryLimiter
from ges_bot.store.api import JobQuery, Snapshot

__all__ = [
    "FoundJob",
    "JobLookup",
    "JobsAnswer",
    "QueryProblem",
    "QueryRunner",
    "Source",
    "SourceKind",
    "in_range",
    "is_glob",
    "is_unreachable",
    "job_time",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_R = TypeVar("_R")

#: At most this many snapshots per project answer one question (the answer says when it was cut).
MAX_SNAPSHOT_ROWS = 10_000
#: Defaults of the unknown-job search (``GES_BOT_LOOKUP_WINDOW``, ``GES_BOT_LOOKUP_PAGES``).
DEFAULT_LOOKUP_WINDOW = timedelta(days=3)
DEFAULT_LOOKUP_MAX_PAGES = 10
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means GES could not be reached (so snapshots may stand in for it)."""
    if isinstance(exc, TimeoutError | TransportError | ResponseError):
        return True
    return isinstance(exc, ApiError) and not isinstance(exc, AuthError) and exc.retryable


def _newest_first(found: Iterable[FoundJob]) -> list[FoundJob]:
    return sorted(found, key=lambda f: (job_time(f.job) or _EPOCH, f.job.job_id), reverse=True)


def _describe_unreachable(alias: str, exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"GES (project {alias}) did not answer within {timeout_s:g}s"
    return f"GES (project {alias}) is unreachable: {exc}"


def _describe_failure(alias: str, exc: JobCenterError) -> str:
    """A sentence for a GES error that is not about reachability."""
    if isinstance(exc, AuthError):
        return (
            f"GES refused the bot's credentials for project {alias} ({exc}). "
            "Whoever runs the bot should check its token, AK/SK or IAM user and the project id (`ges-bot check`)."
        )
    if isinstance(exc, QueryError):
        return f"That question cannot be sent to GES: {exc}."
    if isinstance(exc, ApiError):
        return f"GES (project {alias}) rejected the query: {exc}."
    return f"Asking GES (project {alias}) failed: {exc}."


async def _first_error_cancels(calls: Sequence[Callable[[], Awaitable[_T]]]) -> list[_T]:
    """Run ``calls`` concurrently; the first failure cancels the rest and is raised as itself."""
    if len(calls) == 1:
        return [await calls[0]()]
    tasks = [asyncio.ensure_future(call()) for call in calls]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            error = task.exception() if task.done() and not task.cancelled() else None
            if error is not None:
                raise error
        return [task.result() for task in tasks]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass(slots=True)
class _Flight(Generic[_R]):
    task: asyncio.Future[_R]
    waiters: int = 0


@dataclass(frozen=True, slots=True)
class _Found:
    """A search for one job in a listing: the job (if seen), and how much of the listing was read."""

    job: Job | None
    #: Every page of the listing was read (so a job not found is not in it).
    complete: bool
    read: int
    job_count: int | None


@dataclass(frozen=True, slots=True)
class _Read:
    """Snapshots read for a question, and where they came from."""

    source: Source
    rows: tuple[Snapshot, ...]


class _Shared(Generic[_R]):
    """Concurrent identical listings share one: twenty people asking "all last 7d" at the same
    moment cost GES (and the bot's CPU) one listing, not twenty. Only listings *in flight* are
    shared — nothing is cached — so an answer is never older than the asker's own wait. The
    listing is cancelled when the last asker stops waiting (its own timeout)."""

    def __init__(self) -> None:
        self._flights: dict[Hashable, _Flight[_R]] = {}

    async def run(self, key: Hashable, make: Callable[[], Awaitable[_R]]) -> _R:
        flight = self._flights.get(key)
        if flight is None:
            flight = _Flight(asyncio.ensure_future(make()))
            self._flights[key] = flight
            flight.task.add_done_callback(functools.partial(self._landed, key, flight))
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                # Nobody waits any more: stop paging, and let the next asker start afresh.
                self._flights.pop(key, None)
                flight.task.cancel()

    def _landed(self, key: Hashable, flight: _Flight[_R], task: asyncio.Future[_R]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not task.cancelled():
            task.exception()  # retrieved: every asker may have stopped waiting


class QueryRunner:
    """Runs ``/gesjobs`` questions against the services' job-center clients and store.

    ``live_timeout_s`` bounds how long a question waits for the live job center before it is
    answered from snapshots (the client's own retries included); ``search_timeout_s`` bounds
    the search for a job the bot has never seen, which reads at most ``lookup_max_pages`` pages
    of the jobs GES lists since ``lookup_window`` ago. ``limiter`` (none: no limit) decides who
    may ask GES live right now.
    """

    def __init__(
        self,
        services: Services,
        *,
        live_timeout_s: float = 8.0,
        search_timeout_s: float = 20.0,
        fresh_within: timedelta = timedelta(0),
        clock: Clock = utc_now,
        limiter: LiveQueryLimiter | None = None,
        lookup_max_pages: int = DEFAULT_LOOKUP_MAX_PAGES,
        lookup_window: timedelta = DEFAULT_LOOKUP_WINDOW,
    ) -> None:
        if lookup_max_pages < 1:
            raise ValueError(f"lookup_max_pages must be at least 1, not {lookup_max_pages}")
        self.services = services
        self.live_timeout_s = live_timeout_s
        self.search_timeout_s = search_timeout_s
        #: A project whose last successful poll is at most this old is answered from the store
        #: (one indexed read) instead of GES (pages to fetch and parse): the snapshots *are* the job
        #: center as of that poll, and the answer says how recent it is. Zero: always ask GES.
        self.fresh_within = fresh_within
        self._clock = clock
        self.limiter = limiter
        self.lookup_max_pages = lookup_max_pages
        self.lookup_window = lookup_window
        self._shared: _Shared[JobList] = _Shared()
        self._lookups: _Shared[_Found] = _Shared()
        self._recent_reads: _Shared[_Read] = _Shared()

    def _admit(self, user: str | None) -> Admission:
        if self.limiter is None:
            return Admission(True)
        admission = self.limiter.admit(user)
        if not admission.admitted:
            log.info(
                "/gesjobs: %s over the %s limit of live questions; answering from snapshots", user, admission.limit
            )
        return admission

    # --- which projects --------------------------------------------------------------------

    def _projects(self, alias: str | None) -> list[tuple[str, JobCenterClient]] | QueryProblem:
        clients = self.services.clients
        if not clients:
            return QueryProblem("The bot watches no GES project yet; whoever runs it should configure one.")
        if alias is None:
            return list(clients.items())
        if alias not in clients:
            return unknown_project(alias, tuple(clients))
        return [(alias, clients[alias])]

    # --- lists of jobs ---------------------------------------------------------------------

    async def jobs(
        self, query: Query, *, now: datetime, zone: ZoneInfo, user: str | None = None
    ) -> JobsAnswer | QueryProblem:
        """Every job matching ``query`` (``today`` & co. in ``zone``), newest first; from snapshots
        when ``user`` (or everyone) has asked GES too often lately."""
        projects = self._projects(query.project)
        if isinstance(projects, QueryProblem):
            return projects
        start: datetime | None = None
        end: datetime | None = None
        if query.range is not None:
            start, end = resolve(query.range, now, zone)
        # A project polled moments ago is answered from the store and costs GES nothing, so only
        # the others count against the asker's share of live questions.
        recent = {alias: await self._recent_poll(alias) for alias, _ in projects}
        live = any(when is None for when in recent.values())
        admission = self._admit(user) if live else Admission(True)
        slow_down: str | None = None
        if not admission.admitted:
            assert self.limiter is not None
            slow_down = self.limiter.sentence(admission)

        async def part(alias: str, client: JobCenterClient) -> tuple[Source, list[FoundJob]]:
            as_of = recent[alias]
            if as_of is not None:
                source, found = await self._recent_jobs(alias, query, start, end, as_of)
                if source.kind is SourceKind.RECENT:
                    return source, found
            if slow_down is not None:
                return await self._snapshot_jobs(alias, query, start, end, slow_down)
            return await self._project_jobs(alias, client, query, start, end)

        parts = await asyncio.gather(*(part(alias, client) for alias, client in projects))
        sources = tuple(source for source, _ in parts)
        found = _newest_first(f for _, jobs in parts for f in jobs)
        return JobsAnswer(query=query, zone=zone.key, start=start, end=end, jobs=tuple(found), sources=sources)

    async def _project_jobs(
        self, alias: str, client: JobCenterClient, query: Query, start: datetime | None, end: datetime | None
    ) -> tuple[Source, list[FoundJob]]:
        try:
            async with asyncio.timeout(self.live_timeout_s):
                await self._calibrated(alias, client)
                jobs = await self._live_jobs(client, query, start, end)
        except Exception as exc:
            if not is_unreachable(exc):
                if isinstance(exc, JobCenterError):
                    log.warning("/gesjobs: GES %s refused a query: %s", alias, exc)
                    return Source(alias, SourceKind.ERROR, reason=_describe_failure(alias, exc)), []
                raise
            reason = _describe_unreachable(alias, exc, self.live_timeout_s)
            log.warning("/gesjobs: %s; answering from snapshots", reason)
            return await self._snapshot_jobs(alias, query, start, end, reason)
        found = [FoundJob(alias, job) for job in jobs]
        if start is not None:
            found.extend(await self._long_runners(alias, query, start, end, {j.job_id for j in jobs}))
        return Source(alias, SourceKind.LIVE), found

    async def _recent_poll(self, alias: str) -> datetime | None:
        """When the project was last polled successfully, if that is recent enough to answer from."""
        if self.fresh_within <= timedelta(0):
            return None
        try:
            state = await self.services.store.poll_state(alias)
        except StoreError:
            return None
        if state is None or state.baselined_at is None:
            # No whole picture yet: a first poll cut short by its budget succeeded all the same.
            return None
        last = state.last_success_at
        now = self._clock()
        if last is None or now - last > self.fresh_within:
            return None
        return last

    async def _long_runners(
        self, alias: str, query: Query, start: datetime, end: datetime | None, seen: set[str]
    ) -> list[FoundJob]:
        """Jobs that began before the GES date window but ended inside the range.

        GES's day filter may apply to the begin time, so a three-day import that failed today is not
        in the live answer for "failed today". The poller followed it to its end, so its snapshot
        has the final state: add those the live answer lacks (GES's own answer wins for the rest).
        """
        # Only jobs that began before GES's date window can be missing from its answer: read the
        # snapshots of finished jobs that began before the window's first day (+1, whatever zone GES
        # reads dates in), not the whole range.
        window_start, _ = ges_date_window(start, end or start)
        began_before = datetime.combine(window_start + timedelta(days=1), time.min, tzinfo=UTC)
        statuses = frozenset(query.statuses) & TERMINAL_STATUSES if query.statuses else TERMINAL_STATUSES
        if not statuses:
            return []
        try:
            rows = await self.services.store.query_jobs(
                JobQuery(
                    project=alias,
                    statuses=statuses,
                    graph_pattern=query.graph,
                    job_name=query.job_name,
                    until=began_before,
                    placed_since=start,
                    placed_until=end,
                    limit=MAX_SNAPSHOT_ROWS,
                )
            )
        except StoreError as exc:
            log.warning("/gesjobs: could not add long-running jobs from snapshots: %s", exc)
            return []
        return [
            FoundJob(alias, s.job)
            for s in rows
            if s.job.job_id not in seen and s.job.is_terminal and self._matches(s.job, query, start, end)
        ]

    async def _live_jobs(
        self, client: JobCenterClient, query: Query, start: datetime | None, end: datetime | None
    ) -> list[Job]:
        graph_name = query.graph if query.graph is not None and not is_glob(query.graph) else None
        start_date = end_date = None
        if start is not None and end is not None:
            start_date, end_date = ges_date_window(start, end)
        statuses: list[str | None] = [*sorted(query.statuses)] or [None]
        requests = [
            ListQuery(status=status, graph_name=graph_name, start_date=start_date, end_date=end_date)
            for status in statuses
        ]
        lists = await _first_error_cancels(
            [
                functools.partial(self._shared.run, (id(client), q), functools.partial(client.list_jobs, q))
                for q in requests
            ]
        )
        seen: dict[str, Job] = {}
        for job_list in lists:
            for job in job_list.jobs:
                seen[job.job_id] = job
        return [job for job in seen.values() if self._matches(job, query, start, end)]

    @staticmethod
    def _matches(job: Job, query: Query, start: datetime | None, end: datetime | None) -> bool:
        # GES filtered coarsely (or not at all); this is the exact answer to the question asked.
        if query.statuses and job.status not in query.statuses:
            return False
        if query.graph is not None and not graph_matches(query.graph, job.graph or ""):
            return False
        if query.job_name is not None and (job.job_name or "") != query.job_name:
            return False
        return in_range(job, start, end)

    async def _snapshot_jobs(
        self, alias: str, query: Query, start: datetime | None, end: datetime | None, reason: str | None
    ) -> tuple[Source, list[FoundJob]]:
        read = await self._snapshot_read(alias, query, start, end, reason)
        return read.source, [FoundJob(alias, s.job) for s in read.rows if self._matches(s.job, query, start, end)]

    async def _recent_jobs(
        self, alias: str, query: Query, start: datetime | None, end: datetime | None, as_of: datetime
    ) -> tuple[Source, list[FoundJob]]:
        """The answer from a recent poll's snapshots. People asking the same thing together share
        one read (twenty "all last 7d" are one read of 10k snapshots, not twenty): the read covers
        whole minutes and the poll it reflects, and each asker keeps the jobs of their own range."""
        wide_start = start.replace(second=0, microsecond=0) if start is not None else None
        wide_end = end.replace(second=0, microsecond=0) + timedelta(minutes=1) if end is not None else None
        key = (alias, query.statuses, query.graph, query.job_name, wide_start, wide_end, as_of)
        read = await self._recent_reads.run(
            key, functools.partial(self._snapshot_read, alias, query, wide_start, wide_end, None)
        )
        jobs = [FoundJob(alias, s.job) for s in read.rows if self._matches(s.job, query, start, end)]
        if read.source.kind is not SourceKind.SNAPSHOTS:
            return read.source, jobs
        return Source(alias, SourceKind.RECENT, as_of=as_of, truncated=read.source.truncated), jobs

    async def _snapshot_read(
        self, alias: str, query: Query, start: datetime | None, end: datetime | None, reason: str | None
    ) -> _Read:
        store = self.services.store
        try:
            rows = await store.query_jobs(
                JobQuery(
                    project=alias,
                    statuses=frozenset(query.statuses),
                    graph_pattern=query.graph,
                    job_name=query.job_name,
                    placed_since=start,
                    placed_until=end,
                    limit=MAX_SNAPSHOT_ROWS,
                )
            )
            state = await store.poll_state(alias)
        except StoreError as exc:
            if reason is None:
                log.warning("/gesjobs: could not read snapshots (%s); asking GES", exc)
                return _Read(Source(alias, SourceKind.ERROR, reason="the bot's own records could not be read"), ())
            log.error("/gesjobs: %s, and the database failed too: %s", reason, exc)
            return _Read(
                Source(alias, SourceKind.ERROR, reason=f"{reason}, and the bot's own records could not be read either"),
                (),
            )
        as_of = state.last_success_at if state is not None else None
        source = Source(
            alias, SourceKind.SNAPSHOTS, reason=reason, as_of=as_of, truncated=len(rows) >= MAX_SNAPSHOT_ROWS
        )
        return _Read(source, tuple(rows))

    # --- one job ---------------------------------------------------------------------------

    async def job(self, command: JobDetail, *, user: str | None = None) -> JobLookup | QueryProblem:
        """One job by id: its snapshot tells graph and begin date, GES tells its current state.
        A job the bot has never seen is searched for in GES's recent jobs only (bounded)."""
        projects = self._projects(command.project)
        if isinstance(projects, QueryProblem):
            return projects
        snapshot = await self._known_snapshot(command.job_id, command.project)
        if snapshot is not None:
            recent = await self._recent_poll(snapshot.project)
            # Ended jobs do not change, and a running one was read by that poll: the records are
            # the job center's answer as of moments ago, at no cost to GES or to the asker's share.
            if recent is not None and (snapshot.job.status in TERMINAL_STATUSES or snapshot.last_seen >= recent):
                source = Source(snapshot.project, SourceKind.RECENT, as_of=recent)
                return JobLookup(snapshot.project, snapshot.job, source)
        admission = self._admit(user)
        if not admission.admitted:
            assert self.limiter is not None
            slow_down = self.limiter.sentence(admission)
            if snapshot is not None:
                source = Source(snapshot.project, SourceKind.SNAPSHOTS, reason=slow_down, as_of=snapshot.last_seen)
                return JobLookup(snapshot.project, snapshot.job, source)
            return QueryProblem(f"{slow_down}. The bot has no record of job {command.job_id} yet.")
        if snapshot is not None and snapshot.project in self.services.clients:
            return await self._refresh(snapshot)
        return await self._search(command.job_id, projects)

    async def _known_snapshot(self, job_id: str, project: str | None) -> Snapshot | None:
        try:
            rows = await self.services.store.query_jobs(JobQuery(project=project, job_id=job_id, limit=10))
        except StoreError as exc:
            log.warning("/gesjobs job: could not read snapshots (%s); asking GES only", exc)
            return None
        return max(rows, key=lambda s: s.last_seen) if rows else None

    async def _refresh(self, snapshot: Snapshot) -> JobLookup:
        alias = snapshot.project
        client = self.services.clients[alias]
        known = snapshot.job
        began = known.begin_time or snapshot.first_seen
        query = ListQuery(
            graph_name=known.graph or None,
            # One day of slack: GES's date filter has day granularity in an undocumented zone.
            start_date=(began.astimezone(UTC) - timedelta(days=1)).date(),
        )
        try:
            async with asyncio.timeout(self.live_timeout_s):
                await self._calibrated(alias, client)
                search = await self._find(client, query, known.job_id)
        except Exception as exc:
            if is_unreachable(exc):
                reason = _describe_unreachable(alias, exc, self.live_timeout_s)
            elif isinstance(exc, JobCenterError):
                reason = _describe_failure(alias, exc)
            else:
                raise
            log.warning("/gesjobs job: %s; showing the snapshot", reason)
            return JobLookup(alias, known, Source(alias, SourceKind.SNAPSHOTS, reason=reason, as_of=snapshot.last_seen))
        if search.job is None:
            reason = (
                "GES no longer lists this job"
                if search.complete
                else f"GES lists too many jobs of its graph since it began to look further than {search.read:,}"
            )
            return JobLookup(alias, known, Source(alias, SourceKind.SNAPSHOTS, reason=reason, as_of=snapshot.last_seen))
        return JobLookup(alias, search.job, Source(alias, SourceKind.LIVE))

    async def _find(self, client: JobCenterClient, query: ListQuery, job_id: str) -> _Found:
        """A bounded search for ``job_id`` in ``query``'s pages; the same search in flight is shared."""
        return await self._lookups.run(
            (id(client), query, job_id, self.lookup_max_pages),
            functools.partial(self._first_in_pages, client, query, job_id, self.lookup_max_pages),
        )

    async def _search(self, job_id: str, projects: list[tuple[str, JobCenterClient]]) -> JobLookup | QueryProblem:
        problems: list[str] = []
        cut: list[str] = []
        since = (self.services.clock() - self.lookup_window).astimezone(UTC).date()
        # Only a recent window: paging through every job GES keeps costs a request per hundred
        # jobs per lookup (and jobs the bot has seen were found by their snapshot already).
        window = ListQuery(start_date=since)
        for alias, client in projects:
            try:
                async with asyncio.timeout(self.search_timeout_s):
                    await self._calibrated(alias, client)
                    search = await self._find(client, window, job_id)
            except Exception as exc:
                if is_unreachable(exc):
                    problems.append(_describe_unreachable(alias, exc, self.search_timeout_s))
                elif isinstance(exc, JobCenterError):
                    problems.append(_describe_failure(alias, exc))
                else:
                    raise
                continue
            if search.job is not None:
                return JobLookup(alias, search.job, Source(alias, SourceKind.LIVE))
            if not search.complete:
                of = f" of {search.job_count:,}" if search.job_count is not None else ""
                cut.append(f"{alias} (the first {search.read:,}{of})")
        where = ", ".join(alias for alias, _ in projects)
        if problems:
            return QueryProblem(
                f"The bot has no record of job {job_id}, and GES could not be searched: " + "; ".join(problems) + "."
            )
        window_words = f"since {since.isoformat()}"
        if cut:
            narrow = (
                " Add `project <alias>` to search one project" if len(projects) > 1 else " Find it by its graph instead"
            )
            return QueryProblem(
                f"Job {job_id} is not among the jobs one lookup reads of those GES lists {window_words}: "
                + "; ".join(cut)
                + f".{narrow}, e.g. `/gesjobs all last 24h graph <name>`, or check the id."
            )
        return QueryProblem(
            f"No job {job_id} in GES project {where} {window_words}. Check the id "
            "(older jobs are found only if the bot has seen them)."
            if len(projects) == 1
            else f"No job {job_id} in any of the GES projects {where} {window_words}. Check the id "
            "(older jobs are found only if the bot has seen them)."
        )

    async def _calibrated(self, alias: str, client: JobCenterClient) -> None:
        """Make ``client`` follow its GES's reading of the job list: the one the poller keeps in
        the project's poll state (another replica may be the poller), else a calibration of its
        own; again when an answer contradicted it."""
        if client.calibrated and not client.stale:
            return
        if not client.calibrated:
            try:
                state = await self.services.store.poll_state(alias)
            except StoreError as exc:
                log.warning("/gesjobs: could not read the poll state of %s (%s); calibrating", alias, exc)
                state = None
            kept = Reading.from_cursor(state.cursor) if state is not None else None
            if kept is not None:
                client.use_reading(kept)
                return
        await client.calibrate()

    @staticmethod
    async def _first_in_pages(client: JobCenterClient, query: ListQuery, job_id: str, max_pages: int) -> _Found:
        """The job with ``job_id`` from at most ``max_pages`` of ``query``'s pages, stopping at the
        first page that has it."""
        read = pages_read = 0
        count: int | None = None
        async with aclosing(client.iter_pages(query)) as pages:
            # aclosing: stop paging now (and cancel pages in flight), not whenever collected.
            async for page in pages:
                pages_read += 1
                read += len(page.jobs)
                count = page.job_count if page.job_count is not None else count
                for job in page.jobs:
                    if job.job_id == job_id:
                        return _Found(job, True, read, count)
                if not page.jobs:
                    break
                if pages_read >= max_pages:
                    return _Found(None, count is not None and read >= count, read, count)
        return _Found(None, True, read, count)


def unknown_project(alias: str, choices: Sequence[str]) -> QueryProblem:
    """The answer to a ``project`` alias that is not configured."""
    listed = ", ".join(sorted(choices)) or "none"
    return QueryProblem(f"There is no GES project {alias!r}; the bot watches: {listed}.", tuple(sorted(choices)))
