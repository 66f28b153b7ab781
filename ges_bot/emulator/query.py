"""The job list query: its parameters, validation, filtering, order and paging (pure).

Owns the rules of ``GET /v2/{project_id}/graphs/jobs``: which parameter values are refused with
400 GES.0001 and which jobs a valid query selects. No I/O, no clock.

- ``status`` takes the *request* vocabulary (``running``, ``waiting``, ``success``,
  ``partiallyFailed``, ``failed``; case-sensitive). ``waiting`` selects ``pending`` jobs; the
  response word ``pending`` itself is refused, as the reference page does not list it
  (``waiting_word`` changes which word is accepted; ``status_filter`` can refuse
  ``partiallyFailed`` or make the filter a no-op).
- ``start_time``/``end_time`` are ``yyyy-MM-dd`` read in ``date_filter_tz``; a job is selected when
  its ``date_filter_field`` lies in [start 00:00, end+1 00:00). A job whose field is null is
  excluded whenever a filter on that field is given. start after end selects nothing (not an
  error). ``start_filter_*``/``end_filter_*`` let the two bounds use different fields and zones.
- ``offset`` ≥ 0 and 1 ≤ ``limit`` ≤ ``max_limit``, both plain decimal integers; ``offset`` counts
  items (or pages, per ``offset_unit``); a ``limit_cap`` silently shortens pages.
- ``graph_name`` is an exact, case-sensitive match; an empty value means no filter.
- ``job_count`` is the number of jobs matching the filters (not the page length), unless the
  ``job_count`` setting says otherwise.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from ges_bot.emulator.model import EmuJob
from ges_bot.emulator.settings import EmulatorSettings, Order

__all__ = [
    "REQUEST_STATUSES",
    "JobQuery",
    "QueryParamError",
    "filter_jobs",
    "page_slice",
    "parse_query",
    "request_statuses",
    "sort_jobs",
]

#: Request vocabulary → the response status it selects.
REQUEST_STATUSES: dict[str, str] = {
    "running": "running",
    "waiting": "pending",
    "success": "success",
    "partiallyFailed": "partiallyFailed",
    "failed": "failed",
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UINT = re.compile(r"^\d{1,18}$")


def request_statuses(settings: EmulatorSettings) -> dict[str, str]:
    """The status words this emulator accepts (request word → the response status it selects)."""
    words = dict(REQUEST_STATUSES)
    if settings.waiting_word == "pending":
        del words["waiting"]
    if settings.waiting_word != "waiting":
        words["pending"] = "pending"
    if settings.status_filter == "no-partial":
        del words["partiallyFailed"]
    return words


class QueryParamError(ValueError):
    """A query parameter GES would refuse (answered 400 GES.0001 with this message)."""


@dataclass(frozen=True, slots=True)
class JobQuery:
    offset: int = 0
    limit: int = 10
    graph_name: str | None = None
    #: In the *response* vocabulary (``pending`` for a ``waiting`` request).
    status: str | None = None
    start_date: date | None = None
    end_date: date | None = None

    @property
    def has_dates(self) -> bool:
        return self.start_date is not None or self.end_date is not None

    def cache_key(self) -> tuple[object, ...]:
        return (self.graph_name, self.status, self.start_date, self.end_date)


def _date(name: str, value: str) -> date:
    if not _DATE.match(value):
        raise QueryParamError(f"The parameter {name} is invalid: {value!r} is not a date in the format yyyy-MM-dd.")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise QueryParamError(f"The parameter {name} is invalid: {value!r} is not a valid date.") from None


def parse_query(params: Mapping[str, str], settings: EmulatorSettings) -> JobQuery:
    """Validate the query string (``params`` holds the last value of each name)."""
    offset = 0
    if "offset" in params:
        raw = params["offset"]
        if not _UINT.match(raw):
            raise QueryParamError(f"The parameter offset is invalid: {raw!r} is not a non-negative integer.")
        offset = int(raw)
    limit = settings.default_limit
    if "limit" in params:
        raw = params["limit"]
        if not _UINT.match(raw) or not 1 <= int(raw) <= settings.max_limit:
            raise QueryParamError(
                f"The parameter limit is invalid: {raw!r} is not an integer from 1 to {settings.max_limit}."
            )
        limit = int(raw)
    status = None
    if "status" in params and params["status"] != "":
        raw = params["status"]
        words = request_statuses(settings)
        if raw not in words:
            allowed = ", ".join(words)
            raise QueryParamError(f"The parameter status is invalid: {raw!r} is not one of {allowed}.")
        # "ignored": GES accepts the word and lists every status.
        status = None if settings.status_filter == "ignored" else words[raw]
    start = _date("start_time", params["start_time"]) if params.get("start_time") else None
    end = _date("end_time", params["end_time"]) if params.get("end_time") else None
    return JobQuery(
        offset=offset,
        limit=limit,
        graph_name=params.get("graph_name") or None,
        status=status,
        start_date=start,
        end_date=end,
    )


_MIN = datetime.min.replace(tzinfo=None)


def _random_key(seed: int, job_id: str) -> bytes:
    return hashlib.blake2b(f"{seed}:{job_id}".encode(), digest_size=8).digest()


def sort_jobs(jobs: Iterable[EmuJob], order: Order, seed: int) -> list[EmuJob]:
    """``asc``/``desc`` by ``begin_time`` (ties by insertion; null begin times count as oldest);
    ``random``: a shuffle that is stable per job, so pages stay consistent between requests."""
    if order == "random":
        return sorted(jobs, key=lambda j: _random_key(seed, j.job_id))
    ordered = sorted(
        jobs,
        key=lambda j: (j.begin_time is not None, j.begin_time.replace(tzinfo=None) if j.begin_time else _MIN, j.seq),
    )
    if order == "desc":
        ordered.reverse()
    return ordered


def page_slice(query: JobQuery, settings: EmulatorSettings) -> slice:
    """Which of the selected jobs (by position) this query's page holds, per ``offset_unit`` and
    ``limit_cap``. A capped server pages by the jobs it really answers, so pages count in the
    capped size."""
    size = query.limit if settings.limit_cap is None else min(query.limit, settings.limit_cap)
    if settings.offset_unit == "page0":
        start = query.offset * size
    elif settings.offset_unit == "page1":
        start = max(query.offset - 1, 0) * size
    else:
        start = query.offset
    return slice(start, start + size)


def filter_jobs(jobs: Sequence[EmuJob], query: JobQuery, settings: EmulatorSettings) -> list[EmuJob]:
    """The jobs of ``jobs`` (already ordered) that ``query``'s filters select."""
    lo = (
        datetime.combine(query.start_date, time.min, tzinfo=settings.start_zone)
        if query.start_date is not None
        else None
    )  # inclusive
    hi = (
        datetime.combine(query.end_date + timedelta(days=1), time.min, tzinfo=settings.end_zone)
        if query.end_date is not None
        else None
    )  # exclusive
    lo_by_end = settings.start_field == "end_time"
    hi_by_end = settings.end_field == "end_time"
    out: list[EmuJob] = []
    for job in jobs:
        if query.status is not None and job.status != query.status:
            continue
        if query.graph_name is not None and job.related_graph != query.graph_name:
            continue
        if query.has_dates:
            # One field for both bounds: a null field excludes the job whenever either is given.
            if lo is not None or lo_by_end == hi_by_end:
                when = job.end_time if lo_by_end else job.begin_time
                if when is None or (lo is not None and when < lo):
                    continue
            if hi is not None or lo_by_end == hi_by_end:
                when = job.end_time if hi_by_end else job.begin_time
                if when is None or (hi is not None and when >= hi):
                    continue
        out.append(job)
    return out
