"""``JobCenterClient``: the one way ges-bot talks to a GES job center.

This module owns the HTTP conversation with one GES project: the typed query (:class:`ListQuery`),
paging (every page, de-duplicated, fetched concurrently once the count is known, adapting to a
server that caps ``limit``, following a list that grows while it is read), retries (capped
exponential backoff with full jitter, on 408/429/5xx, timeouts, connection errors and unreadable
bodies), bounded reads (an answer is streamed and abandoned past ``max_answer_bytes``; JSON nested
too deep to parse is a bad answer, not a crash) and the mapping of failures onto
:mod:`ges_bot.errors`. It turns JSON into domain types
only through :mod:`ges_bot.jobcenter.wire` and authenticates only through
:mod:`ges_bot.jobcenter.auth`. It decides nothing about events and keeps no state between calls
beyond the connection pool, the cached IAM token, :attr:`JobCenterClient.requests_sent` and the
:attr:`JobCenterClient.reading` of this GES.

Calibration (:meth:`JobCenterClient.calibrate`): a handful of small requests show which reading of
the loosely documented list this GES follows (:mod:`ges_bot.jobcenter.reading` decides; what
each reading means is documented there). Every request then follows it: the status filter is
sent only where it works (else the answer is filtered here), offsets are page numbers where GES
counts pages, ``job_count`` is trusted only where it counts the query's matches (else pages are
read until an empty one), naive times are read in the zone they are written in. An answer that
contradicts the reading (a 400 on a status filter, a filtered answer holding other statuses, a
full page whose count says it is the last) degrades that listing to what is right anyway and
marks the reading :attr:`~JobCenterClient.stale`, so the next calibration redoes it. An
uncalibrated client follows :data:`~ges_bot.jobcenter.reading.ASSUMED` (the reference page's
reading).

Several projects are several clients; nothing here is global.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncGenerator, Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, urlencode

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from ges_bot.clock import Clock, utc_now
from ges_bot.config import ProjectSettings
from ges_bot.domain import Job, JobStatus, QueryStatus
from ges_bot.errors import (
    ApiError,
    AuthError,
    JobCenterError,
    QueryError,
    ResponseError,
    TransportError,
    UnusableAnswerError,
)
from ges_bot.jobcenter import reading as rd
from ges_bot.jobcenter.auth import auth_for
from ges_bot.jobcenter.reading import ASSUMED, Reading
from ges_bot.jobcenter.wire import naive_times, parse_error_body, parse_job, parse_job_list

__all__ = ["JobCenterClient", "JobList", "ListQuery", "Page"]

log = logging.getLogger(__name__)

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_STATUS_WORDS: dict[str, QueryStatus] = {s.value.lower(): s for s in QueryStatus}
_STATUS_WORDS[JobStatus.PENDING.value] = QueryStatus.WAITING
_ACCEPTED_STATUSES = "running, waiting (or pending), success, partiallyFailed, failed"
#: A graph name no job has: its job_count shows whether counts follow the filters.
_NO_SUCH_GRAPH = "ges-bot-calibration-no-such-graph"
#: How much of an unreadable body an error message quotes.
_SNIPPET = 120
#: Default byte cap of one answer: a page of 1000 imports with their files is a few MB, and a
#: 10 MB ``fail_reason`` still fits; a 100 MB answer is refused after 16 MiB were read.
DEFAULT_MAX_ANSWER_BYTES = 16 * 1024 * 1024
#: Reading one answer's body may take this many times the per-request timeout in all (a server
#: dripping a byte at a time would otherwise hold a tick for ever: httpx's timeout is per read).
_BODY_DEADLINE_FACTOR = 3


def _status(value: str) -> QueryStatus:
    found = _STATUS_WORDS.get(str(value).strip().lower().replace("_", "").replace("-", ""))
    if found is None:
        raise QueryError(f"unknown job status {value!r}; use one of: {_ACCEPTED_STATUSES}")
    return found


def _date(value: date | str, what: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    if _DATE_RE.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise QueryError(f"{what} {value!r} is not a date in the form yyyy-MM-dd (e.g. 2026-11-01)")


@dataclass(frozen=True)
class ListQuery:
    """Filters of ``GET /v2/{project_id}/graphs/jobs``, validated before anything is sent.

    ``status`` is in the *request* vocabulary; the response word ``pending`` is accepted and
    becomes ``waiting``. The job center filters by dates only (``yyyy-MM-dd``), inclusive; which
    of a job's times it compares is not documented, so callers should not rely on it.
    """

    status: str | None = None
    graph_name: str | None = None
    start_date: date | None = None
    end_date: date | None = None

    def __post_init__(self) -> None:
        # Frozen: normalise in place once, so every ListQuery in the program is valid.
        if self.status is not None:
            object.__setattr__(self, "status", _status(self.status))
        if self.graph_name is not None and not str(self.graph_name).strip():
            object.__setattr__(self, "graph_name", None)
        if self.start_date is not None:
            object.__setattr__(self, "start_date", _date(self.start_date, "start date"))
        if self.end_date is not None:
            object.__setattr__(self, "end_date", _date(self.end_date, "end date"))
        if self.start_date and self.end_date and self.start_date > self.end_date:
            raise QueryError(f"start date {self.start_date} is after end date {self.end_date}")

    @classmethod
    def build(
        cls,
        *,
        status: str | None = None,
        graph_name: str | None = None,
        graph: str | None = None,
        start: date | str | None = None,
        end: date | str | None = None,
    ) -> ListQuery:
        """A query from loose input (strings from a user or a config file); ``QueryError`` names
        the bad value and what is accepted. ``graph`` is an alias of ``graph_name``."""
        if graph is not None and graph_name is not None and graph != graph_name:
            raise QueryError(f"give the graph once (graph={graph!r}, graph_name={graph_name!r})")
        return cls(
            status=status,
            graph_name=graph_name if graph_name is not None else graph,
            start_date=_date(start, "start date") if start is not None and start != "" else None,
            end_date=_date(end, "end date") if end is not None and end != "" else None,
        )

    def params(self) -> list[tuple[str, str]]:
        """The query parameters, without offset and limit."""
        out: list[tuple[str, str]] = []
        if self.graph_name is not None:
            out.append(("graph_name", self.graph_name))
        if self.status is not None:
            out.append(("status", str(self.status)))
        if self.start_date is not None:
            out.append(("start_time", self.start_date.isoformat()))
        if self.end_date is not None:
            out.append(("end_time", self.end_date.isoformat()))
        return out


@dataclass(frozen=True)
class Page:
    """One answer of the list API: the jobs at item ``offset`` matching the query, and how many
    jobs match in all — ``job_count`` is ``None`` when this GES's count cannot be trusted for
    the query (see the module docstring). ``size`` is how many list rows the answer held from
    ``offset`` on, matching or not (filtered here): the next page starts at ``offset + size``."""

    job_count: int | None
    jobs: list[Job]
    offset: int
    limit: int
    size: int = -1
    #: The ids of those ``size`` rows.
    row_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.size < 0:
            object.__setattr__(self, "size", len(self.jobs))
            object.__setattr__(self, "row_ids", tuple(j.job_id for j in self.jobs))


@dataclass(frozen=True)
class JobList:
    """Every job of a query, each ``job_id`` once; ``job_count`` is the last count GES reported."""

    job_count: int | None
    jobs: list[Job] = field(default_factory=list)


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None


def _answered_as(status: str) -> str:
    """The response word of a request-vocabulary status (``waiting`` is answered ``pending``)."""
    return JobStatus.PENDING.value if status == QueryStatus.WAITING else str(status)


def _refused_filter(exc: ApiError) -> bool:
    """A 400 saying a parameter is wrong (GES.0001), not that the project is (GES.0016)."""
    return exc.http_status == 400 and exc.error_code in (None, "GES.0001")


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, JobCenterError) and bool(exc.retryable)


class JobCenterClient:
    """Async client of one GES project's job center. Use as ``async with`` or call :meth:`aclose`.

    ``concurrency`` bounds the pages fetched at once (1 = one after another). Each request is
    tried at most ``1 + max_retries`` times; the wait before retry *n* is uniform in
    ``[0, min(backoff_cap, backoff_base * 2**(n-1))]`` seconds. An answer longer than
    ``max_answer_bytes`` (decoded) is abandoned as soon as that many bytes were read and raises
    :class:`~ges_bot.errors.UnusableAnswerError` (not retried).
    """

    def __init__(
        self,
        project: ProjectSettings,
        *,
        page_size: int = 100,
        concurrency: int = 4,
        timeout: float = 10.0,
        max_retries: int = 4,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        backoff_base: float = 0.5,
        backoff_cap: float = 20.0,
        transport: httpx.AsyncBaseTransport | None = None,
        auth: httpx.Auth | None = None,
        clock: Clock = utc_now,
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {page_size}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, not {max_retries}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        if max_answer_bytes < 1:
            raise ValueError(f"max_answer_bytes must be at least 1, not {max_answer_bytes}")
        self.project = project
        self.page_size = page_size
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_answer_bytes = max_answer_bytes
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        #: HTTP requests sent to GES (every attempt, every page, every re-authenticated retry;
        #: not the IAM token requests).
        self.requests_sent = 0
        #: How this GES reads the list API (``calibrate`` learns it; the poller keeps it per project).
        self.reading: Reading = ASSUMED
        #: An answer contradicted the reading: calibrate again before trusting it.
        self.stale = False
        #: Whether ``calibrate`` ran (or a reading was handed in with ``use_reading``).
        self.calibrated = False
        #: The ``Date`` header of the last answer (GES's own clock), if it sent one.
        self.server_date: datetime | None = None
        self._calibration: asyncio.Future[Reading] | None = None
        self.auth = auth or auth_for(project, clock=clock, timeout=timeout, transport=transport)
        self._prefix = f"/v2/{quote(project.project_id, safe='')}"
        self._http = httpx.AsyncClient(
            base_url=project.endpoint,
            auth=self.auth,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
            headers={"Accept": "application/json", "User-Agent": "ges-bot"},
            event_hooks={"request": [self._count_request]},
        )

    def __repr__(self) -> str:
        return f"JobCenterClient(alias={self.project.alias!r}, endpoint={self.project.endpoint!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
        closer = getattr(self.auth, "aclose", None)
        if closer is not None:
            await closer()

    async def _count_request(self, request: httpx.Request) -> None:
        self.requests_sent += 1

    # --- the API ---------------------------------------------------------------------------

    async def list_page(self, query: ListQuery, offset: int, limit: int) -> Page:
        """The jobs of ``query`` from item ``offset``, at most ``limit`` (GES may return fewer),
        asked for as this GES reads the list (see the module docstring)."""
        if offset < 0:
            raise QueryError(f"offset {offset} is negative")
        if limit < 1:
            raise QueryError(f"limit {limit} must be at least 1")
        reading = self.reading
        send_status, local = rd.wire_status(reading, query.status)
        wire_query = replace(query, status=None) if query.status is not None else query
        try:
            return await self._list_page(query, wire_query, send_status, local, offset, limit)
        except ApiError as exc:
            if not _refused_filter(exc) or (send_status is None and not query.start_date and not query.end_date):
                raise
            if send_status is not None:
                # Degrade, never stop: this status filter is refused; list without it, filter here.
                log.warning(
                    "GES %s refused status=%s (%s); listing without it and filtering here",
                    self.project.alias,
                    send_status,
                    exc,
                )
                self.reading = self.reading.with_refused(send_status)
                self.stale = True
                try:
                    return await self._list_page(query, wire_query, None, True, offset, limit)
                except ApiError as again:
                    if not _refused_filter(again) or not (query.start_date or query.end_date):
                        raise
                    exc = again
            # Then the date filter: a broader listing, filtered by whoever asked.
            log.warning("GES %s refused a date filter (%s); listing without it", self.project.alias, exc)
            broad = replace(wire_query, start_date=None, end_date=None)
            return await self._list_page(query, broad, None, query.status is not None, offset, limit)

    async def _list_page(
        self,
        query: ListQuery,
        wire_query: ListQuery,
        send_status: str | None,
        local: bool,
        offset: int,
        limit: int,
    ) -> Page:
        reading = self.reading
        if reading.limit_cap is not None:
            limit = min(limit, reading.limit_cap)
        wire_off, skip = rd.wire_offset(reading, offset, limit)
        params = [*wire_query.params()]
        if send_status is not None:
            # Where ListQuery.params puts it: after graph_name, before the dates.
            at = 1 if wire_query.graph_name is not None else 0
            params.insert(at, ("status", send_status))
        body = await self._get_json(
            f"{self._prefix}/graphs/jobs", [*params, ("offset", str(wire_off)), ("limit", str(limit))]
        )
        naive = naive_times(body)
        if naive is not None and reading.times != ("naive" if naive else "aware"):
            self._learn(replace(self.reading, times="naive" if naive else "aware"), "the times GES writes")
        try:
            count, rows = parse_job_list(body, self.reading.naive_offset)
        except ResponseError as exc:
            raise ResponseError(f"GES's job list (offset {offset}) could not be read: {exc}") from None
        if skip and len(rows) >= limit:
            # A GES counting pages answered the page holding ``offset``; the rest of the jobs from
            # there are on the next page (asked for only when this one is full: a tail probe
            # past the end of the list costs one request).
            following = await self._get_json(
                f"{self._prefix}/graphs/jobs", [*params, ("offset", str(wire_off + 1)), ("limit", str(limit))]
            )
            try:
                rows += parse_job_list(following, self.reading.naive_offset)[1]
            except ResponseError as exc:
                raise ResponseError(f"GES's job list (offset {offset}) could not be read: {exc}") from None
        rows = rows[skip : skip + limit]
        jobs = rows
        if query.status is not None:
            wanted = _answered_as(query.status)
            jobs = [j for j in rows if j.status == wanted]
            if not local and len(jobs) < len(rows):
                # Asked for one status, got others: this GES ignores the filter.
                log.warning(
                    "GES %s answered status=%s with jobs of other statuses: the filter is ignored; filtering here",
                    self.project.alias,
                    send_status,
                )
                self._learn(replace(self.reading, status_filter="ignored"), "a filtered answer")
                self.stale = True
                local = True
        filtered = bool(wire_query.params()) or send_status is not None
        trusted = rd.trusts_count(reading, filtered=filtered, local_filter=local)
        return Page(
            job_count=count if trusted else None,
            jobs=jobs,
            offset=offset,
            limit=limit,
            size=len(rows),
            row_ids=tuple(j.job_id for j in rows),
        )

    # --- calibration ---------------------------------------------------------------------

    def use_reading(self, reading: Reading) -> None:
        """Follow ``reading`` (one kept from an earlier calibration)."""
        self.reading = reading
        self.calibrated = True
        self.stale = False

    async def calibrate(self) -> Reading:
        """Learn this GES's reading from a handful of small requests (safe on an empty job center:
        what they cannot show stays undecided, and listings then use what is right under every
        reading). Logs the reading when it changes; returns it. Callers at the same moment share
        one calibration."""
        flight = self._calibration
        if flight is None or flight.done():
            flight = self._calibration = asyncio.ensure_future(self._calibrate())
        return await asyncio.shield(flight)

    async def _calibrate(self) -> Reading:
        limit = min(self.page_size, self.reading.limit_cap or self.page_size)
        # Side by side: one round trip (two when a probe's answer calls for another).
        head, second, nothing, waiting, partial = await asyncio.gather(
            self._probe(0, limit),
            self._probe(1, limit),
            self._probe(0, 1, graph_name=_NO_SUCH_GRAPH),
            self._probe(0, 2, status="waiting"),
            self._probe(0, 2, status=QueryStatus.PARTIALLY_FAILED.value),
        )
        statuses = [waiting, partial]
        if waiting.refused:
            statuses.append(await self._probe(0, 2, status="pending"))
        third = await self._probe(2, limit) if second.ids and second.ids == head.ids else None
        keep = replace(self.reading, refused=frozenset()) if self.calibrated else rd.UNDECIDED
        decided = rd.decide(rd.Evidence(head, second, nothing, tuple(statuses), third), keep)
        if decided.times == "naive":
            # The zone of naive times needs a clock to compare with: whoever polls says
            # (learn_naive_offset); until then what was learnt stays.
            offset = self.reading.naive_offset_min if self.reading.times == "naive" else 0
            decided = replace(decided, naive_offset_min=offset)
        self.calibrated = True
        self.stale = False
        self._learn(decided, "calibration")
        return decided

    async def _probe(
        self, offset: int, limit: int, *, status: str | None = None, graph_name: str | None = None
    ) -> rd.Probe:
        """One raw request for calibration: nothing of the reading applied."""
        params: list[tuple[str, str]] = []
        if graph_name is not None:
            params.append(("graph_name", graph_name))
        if status is not None:
            params.append(("status", status))
        params += [("offset", str(offset)), ("limit", str(limit))]
        try:
            body = await self._get_json(f"{self._prefix}/graphs/jobs", params)
        except ApiError as exc:
            if status is not None and _refused_filter(exc):
                return rd.Probe(offset=offset, limit=limit, jobs=None, status=status, graph_name=graph_name)
            raise
        count, jobs = parse_job_list(body)
        return rd.Probe(
            offset=offset,
            limit=limit,
            job_count=count,
            jobs=tuple(jobs),
            status=status,
            graph_name=graph_name,
            naive=naive_times(body),
        )

    def learn_naive_offset(self, minutes: int) -> None:
        """Naive times turned out to be written ``minutes`` east of UTC (a job began in the future)."""
        if self.reading.times == "naive" and minutes != self.reading.naive_offset_min:
            self._learn(replace(self.reading, naive_offset_min=minutes), "times ahead of the clock")

    def _learn(self, reading: Reading, why: str) -> None:
        if reading == self.reading:
            return
        self.reading = reading
        log.info(
            "GES %s reads the job list as follows (%s): %s",
            self.project.alias,
            why,
            "; ".join(f"{point}: {text}" for point, text, _ in rd.describe(reading)),
        )

    async def iter_pages(self, query: ListQuery | None = None) -> AsyncGenerator[Page, None]:
        """Every page of ``query``, in the order they arrive (not necessarily by offset).

        Page 1 gives ``job_count`` (and, if GES answers fewer jobs than asked while the count says
        there are more, the server's own page size). The remaining pages are then fetched at
        once, at most ``concurrency`` in flight. If fewer distinct jobs than the last reported
        count came back — the list grew or shifted while it was read — pages past the end are
        read one by one until an empty one. Without a ``job_count``, pages are read one after
        another until an empty one.
        """
        query = query or ListQuery()
        seen: set[str] = set()

        def absorb(page: Page) -> int:
            before = len(seen)
            seen.update(page.row_ids)
            return len(seen) - before

        first = await self.list_page(query, 0, self.page_size)
        yield first
        absorb(first)
        if not first.size:
            return
        count = first.job_count
        step = first.limit
        if first.size >= step and self.reading.offset in (rd.UNKNOWN, "zero"):
            # Calibration saw too few jobs to tell how offsets count; now there are enough.
            await self.calibrate()
        if count is not None and count <= first.size and first.size >= step:
            # A full page whose count says it is all: a count of the page's length looks the
            # same. One more page tells (and costs one request only in this case).
            count = None
        if first.size < step and (count is None or count > first.size):
            # The server caps limit below what we asked (or the list is short: then the next
            # page is empty and we stop).
            step = first.size
            log.debug("GES %s answered %d jobs for limit %d; paging by %d", self.project.alias, step, first.limit, step)

        # aclosing: a consumer that stops early (aclose) must cancel pages in flight now, not
        # whenever the inner generator is collected.
        if count is None:
            async with aclosing(self._walk(query, first.size, step, seen, target=None)) as walk:
                async for page in walk:
                    yield page
            return

        latest = count
        async with aclosing(self._fetch(query, range(step, count, step), step)) as fetch:
            async for page in fetch:
                yield page
                absorb(page)
                if page.job_count is not None:
                    latest = page.job_count
        if len(seen) < latest:
            pages = -(-count // step)
            log.info(
                "GES %s: %d distinct jobs after %d pages but job_count is %d; reading past the end",
                self.project.alias,
                len(seen),
                pages,
                latest,
            )
            async with aclosing(self._walk(query, pages * step, step, seen, target=latest)) as walk:
                async for page in walk:
                    yield page

    async def _fetch(self, query: ListQuery, offsets: Sequence[int], limit: int) -> AsyncGenerator[Page, None]:
        """The pages at ``offsets``, at most ``concurrency`` in flight, as they complete."""
        if self.concurrency == 1 or len(offsets) <= 1:
            for offset in offsets:
                page = await self.list_page(query, offset, limit)
                yield page
                if not page.size:
                    return  # the list shrank; later pages are empty too
            return
        # A sliding window, not a task per page: a job_count of a million must not create ten
        # thousand tasks up front; a page is asked for only when one in flight has landed.
        pending = iter(offsets)
        tasks: set[asyncio.Task[Page]] = set()
        done: set[asyncio.Task[Page]] = set()
        try:
            for offset in pending:
                tasks.add(asyncio.create_task(self.list_page(query, offset, limit)))
                if len(tasks) >= self.concurrency:
                    break
            while tasks:
                done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    page = task.result()
                    yield page
                    # An empty page: the list ends before it (or shrank), and a job_count that says
                    # otherwise is not worth a request per page; pages in flight still land.
                    following = next(pending, None) if page.size else None
                    if following is None:
                        pending = iter(())
                    else:
                        tasks.add(asyncio.create_task(self.list_page(query, following, limit)))
        finally:
            # An error (or a consumer that stops early) abandons the rest.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, *done, return_exceptions=True)

    async def _walk(
        self, query: ListQuery, offset: int, step: int, seen: set[str], *, target: int | None
    ) -> AsyncGenerator[Page, None]:
        """Pages from ``offset`` one by one until an empty page, a page of nothing new (a server
        ignoring offset must not keep us here forever) or — when a ``target`` count is known, and
        followed as GES updates it — until that many distinct jobs were seen."""
        while True:
            page = await self.list_page(query, offset, step)
            yield page
            new = set(page.row_ids) - seen
            seen.update(new)
            if not page.size:
                return
            if not new:
                log.warning(
                    "GES %s: the page at offset %d held only jobs already seen; stopping", self.project.alias, offset
                )
                self.stale = True
                return
            if target is not None:
                target = page.job_count if page.job_count is not None else target
                if len(seen) >= target:
                    return
                offset += step
            else:
                offset += page.size

    async def list_jobs(self, query: ListQuery | None = None) -> JobList:
        """Every job of ``query``, each ``job_id`` once (the copy received last wins)."""
        jobs: dict[str, Job] = {}
        count: int | None = None
        async for page in self.iter_pages(query):
            for job in page.jobs:
                jobs.pop(job.job_id, None)
                jobs[job.job_id] = job
            if page.job_count is not None:
                count = page.job_count
        return JobList(job_count=count, jobs=list(jobs.values()))

    async def job_status(self, graph_id: str, job_id: str) -> Job:
        """One job by graph id and job id (``GET …/graphs/{graph_id}/jobs/{job_id}/status``)."""
        if not graph_id or not job_id:
            raise QueryError("job_status needs both a graph id and a job id")
        path = f"{self._prefix}/graphs/{quote(graph_id, safe='')}/jobs/{quote(job_id, safe='')}/status"
        body = await self._get_json(path, [])
        if not isinstance(body, dict):
            raise ResponseError(f"GES's status of job {job_id} is a {type(body).__name__}, not a JSON object")
        try:
            return parse_job({"job_id": job_id, **body})
        except ResponseError as exc:
            raise ResponseError(f"GES's status of job {job_id} could not be read: {exc}") from None

    # --- one request, retried ------------------------------------------------------------

    async def _get_json(self, path: str, params: list[tuple[str, str]]) -> Any:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=wait_random_exponential(multiplier=self.backoff_base, max=self.backoff_cap),
            retry=retry_if_exception(_retryable),
            before_sleep=lambda state: self._log_retry(state, path, params),
            sleep=asyncio.sleep,
            reraise=True,
        )
        return await retrying(self._get_once, path, params)

    def _log_retry(self, state: RetryCallState, path: str, params: Iterable[tuple[str, str]]) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        target = f"{path}?{urlencode(list(params))}" if params else path
        log.warning(
            "GES %s: GET %s failed (attempt %d of %d): %s; retrying in %.2fs",
            self.project.alias,
            target,
            state.attempt_number,
            self.max_retries + 1,
            error,
            delay,
        )

    async def _get_once(self, path: str, params: list[tuple[str, str]]) -> Any:
        request = self._http.build_request("GET", path, params=tuple(params))
        where = f"GET {path}"
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TimeoutException:
            raise TransportError(
                f"GES at {self.project.endpoint} did not answer {where} within {self.timeout:g}s"
            ) from None
        except httpx.TransportError as exc:
            raise TransportError(
                f"could not reach GES at {self.project.endpoint} ({where}): {exc or type(exc).__name__}"
            ) from None
        status = response.status_code
        request_id = response.headers.get("X-Request-Id")
        self.server_date = _http_date(response.headers.get("Date"))
        try:
            try:
                raw = await self._read_capped(response, where)
            except TimeoutError:
                raise TransportError(
                    f"GES at {self.project.endpoint} took more than {self.timeout * _BODY_DEADLINE_FACTOR:g}s "
                    f"to send its answer to {where} (HTTP {status})"
                ) from None
            except httpx.TimeoutException:
                raise TransportError(
                    f"GES at {self.project.endpoint} stopped sending its answer to {where} (HTTP {status}) "
                    f"for more than {self.timeout:g}s"
                ) from None
            except httpx.TransportError as exc:
                raise ResponseError(
                    f"GES's answer to {where} (HTTP {status}) was cut short: {exc or type(exc).__name__}",
                    http_status=status,
                    request_id=request_id,
                ) from None
        finally:
            await response.aclose()

        if not 200 <= status < 300:
            raise self._api_error(response, raw, request_id)
        try:
            return json.loads(raw)
        except RecursionError:
            raise UnusableAnswerError(
                f"GES answered {where} with HTTP {status} but its JSON is nested too deep to read ({len(raw)} bytes)",
                http_status=status,
                request_id=request_id,
            ) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ResponseError(
                f"GES answered {where} with HTTP {status} but {_describe_unreadable(response, raw, exc)}",
                http_status=status,
                request_id=request_id,
            ) from None

    async def _read_capped(self, response: httpx.Response, where: str) -> bytearray:
        """The body, streamed: at most ``max_answer_bytes`` are ever held, and reading it all may
        take at most a few timeouts. Past the cap the connection is dropped and the answer refused."""
        cap = self.max_answer_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            raise self._too_large(response, where, f"it announces {int(declared):,} bytes")
        body = bytearray()
        async with asyncio.timeout(self.timeout * _BODY_DEADLINE_FACTOR):
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > cap:
                    raise self._too_large(response, where, f"more than {cap:,} bytes were sent")
        return body  # not bytes(body): a copy would double the peak

    def _too_large(self, response: httpx.Response, where: str, how: str) -> UnusableAnswerError:
        return UnusableAnswerError(
            f"GES's answer to {where} (HTTP {response.status_code}) is too large: {how}, and the cap is "
            f"{self.max_answer_bytes:,} (GES_BOT_GES_MAX_ANSWER_BYTES; a smaller GES_BOT_PAGE_SIZE makes pages smaller)",
            http_status=response.status_code,
            request_id=response.headers.get("X-Request-Id"),
        )

    @staticmethod
    def _api_error(response: httpx.Response, raw: bytes | bytearray, request_id: str | None) -> ApiError:
        try:
            code, msg = parse_error_body(json.loads(raw))
        except (ValueError, UnicodeDecodeError, RecursionError):
            code, msg = None, None
        if code is None and msg is None:
            msg = response.reason_phrase or None
        cls = AuthError if response.status_code in (401, 403) else ApiError
        return cls(response.status_code, code, msg, request_id)


def _describe_unreadable(response: httpx.Response, raw: bytes | bytearray, exc: Exception) -> str:
    kind = response.headers.get("Content-Type", "no content type")
    if not raw.strip():
        return f"an empty body ({kind})"
    text = raw[:_SNIPPET].decode("utf-8", errors="replace")
    if raw.lstrip()[:1] in (b"{", b"["):
        return f"JSON that is cut short or malformed ({exc}; {len(raw)} bytes, {kind})"
    return f"a body that is not JSON ({kind}, {len(raw)} bytes, starting {text!r})"
