"""Which reading of the loosely documented job list a GES follows, decided from what it answered (pure).

GES documents ``GET /v2/{project_id}/graphs/jobs`` loosely, and each loose point has more than one
reading a real job center could follow:

==================  ===========================================================================
``job_count``       ``filtered`` (jobs matching the filters) · ``unfiltered`` (every job of the
                    job center, whatever the filters) · ``page`` (the length of this page)
``offset``          ``item`` (jobs to skip) · ``page0`` (a page number from 0) · ``page1`` (from 1)
status filter       ``all`` accepted · some refused with a 400 (the SDK's doc leaves out
                    ``partiallyFailed``) · ``ignored`` (no effect)
waiting word        the request word for pending jobs: ``waiting`` (the reference page) or
                    ``pending`` (what answers say)
``limit``           capped silently below what was asked
times               with a zone (or epoch) · naive in UTC · naive in another zone (UTC+8)
==================  ===========================================================================

This module owns the :class:`Reading` value, the decisions that turn probe answers into one
(:func:`decide`), the rules that say what to send under a reading (:func:`wire_status`,
:func:`wire_offset`, :func:`trusts_count`) and its encoding in the poll-state cursor. It does no
I/O and reads no clock: ``JobCenterClient.calibrate`` sends the probes and the poller keeps the
result per project.

A point that cannot be decided yet (an empty job center says nothing about offsets) stays
``unknown``, and the rules then choose what is right under every reading, at more requests: no
status filter (filter here), no trust in ``job_count`` (read until an empty page).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from ges_bot.domain import Job, JobStatus, QueryStatus

__all__ = [
    "ASSUMED",
    "UNDECIDED",
    "Probe",
    "Reading",
    "decide",
    "describe",
    "naive_offset_hint",
    "trusts_count",
    "wire_offset",
    "wire_status",
]

UNKNOWN = "unknown"
JOB_COUNTS = ("filtered", "unfiltered", "page")
#: ``zero``: offset 0 is the first page (``item`` or ``page0``), the rest not known yet.
OFFSETS = ("item", "page0", "page1", "zero")
STATUS_FILTERS = ("all", "ignored")
WAITING_WORDS = ("waiting", "pending")
TIMES = ("aware", "naive")
_REQUEST_WORDS: tuple[str, ...] = tuple(s.value for s in QueryStatus)


@dataclass(frozen=True, slots=True)
class Reading:
    """How one GES answers the job list. ``unknown`` everywhere means: not decided (yet)."""

    job_count: str = UNKNOWN
    offset: str = UNKNOWN
    #: ``all``: a status filter selects; ``ignored``: it has no effect; ``unknown``.
    status_filter: str = UNKNOWN
    #: Request words answered with a 400 (e.g. ``partiallyFailed``).
    refused: frozenset[str] = frozenset()
    #: The request word that selects pending jobs.
    waiting_word: str = UNKNOWN
    #: ``limit`` is silently capped at this many jobs (``None``: no cap seen).
    limit_cap: int | None = None
    #: ``aware``: times carry a zone (or are epoch); ``naive``: they do not; ``unknown``.
    times: str = UNKNOWN
    #: For naive times: minutes east of UTC they are written in (0 = UTC).
    naive_offset_min: int = 0

    @property
    def decided(self) -> bool:
        """Every point that matters for listing is known (times may stay unknown: no jobs)."""
        points = (self.job_count, self.offset, self.status_filter, self.waiting_word)
        return UNKNOWN not in points and self.offset != "zero"

    @property
    def naive_offset(self) -> timedelta:
        return timedelta(minutes=self.naive_offset_min) if self.times == "naive" else timedelta(0)

    def with_refused(self, word: str) -> Reading:
        return replace(self, refused=self.refused | {word})

    def to_cursor(self) -> dict[str, int]:
        """The reading as poll-state cursor entries (``reading:*``; the cursor holds integers)."""
        return {
            "reading:job_count": _index(JOB_COUNTS, self.job_count),
            "reading:offset": _index(OFFSETS, self.offset),
            "reading:status_filter": _index(STATUS_FILTERS, self.status_filter),
            "reading:refused": sum(1 << i for i, w in enumerate(_REQUEST_WORDS) if w in self.refused),
            "reading:waiting": _index(WAITING_WORDS, self.waiting_word),
            "reading:limit_cap": self.limit_cap or 0,
            "reading:times": _index(TIMES, self.times),
            "reading:naive_offset": self.naive_offset_min,
        }

    @classmethod
    def from_cursor(cls, cursor: Mapping[str, int]) -> Reading | None:
        """The reading kept in a cursor, or ``None`` when it holds none."""
        if "reading:job_count" not in cursor:
            return None
        mask = cursor.get("reading:refused", 0)
        return cls(
            job_count=_value(JOB_COUNTS, cursor.get("reading:job_count", 0)),
            offset=_value(OFFSETS, cursor.get("reading:offset", 0)),
            status_filter=_value(STATUS_FILTERS, cursor.get("reading:status_filter", 0)),
            refused=frozenset(w for i, w in enumerate(_REQUEST_WORDS) if mask & (1 << i)),
            waiting_word=_value(WAITING_WORDS, cursor.get("reading:waiting", 0)),
            limit_cap=cursor.get("reading:limit_cap") or None,
            times=_value(TIMES, cursor.get("reading:times", 0)),
            naive_offset_min=cursor.get("reading:naive_offset", 0),
        )


def _index(options: Sequence[str], value: str) -> int:
    return options.index(value) + 1 if value in options else 0


def _value(options: Sequence[str], index: int) -> str:
    return options[index - 1] if 1 <= index <= len(options) else UNKNOWN


#: The reading the reference page and the official SDK suggest; what an uncalibrated client uses.
ASSUMED = Reading(job_count="filtered", offset="item", status_filter="all", waiting_word="waiting", times="aware")
#: Nothing known: every rule picks what is right under all readings.
UNDECIDED = Reading()


# --- what to send -------------------------------------------------------------------------------


def wire_status(reading: Reading, status: str | None) -> tuple[str | None, bool]:
    """The ``status`` parameter to send for a wanted request-vocabulary ``status``, and whether the
    answer must be filtered here (the filter is refused, ignored or not known to work)."""
    if status is None:
        return None, False
    if reading.status_filter != "all" or status in reading.refused:
        return None, True
    if status == QueryStatus.WAITING:
        if reading.waiting_word == UNKNOWN:
            return None, True
        return reading.waiting_word, False
    return status, False


def wire_offset(reading: Reading, offset: int, limit: int) -> tuple[int, int]:
    """``(offset parameter, jobs to drop from the front of the answer)`` for the jobs from item
    ``offset`` on, pages of ``limit``. A page-numbered GES can only start at a page boundary: the
    page holding ``offset`` is asked for and its head dropped (the answer is then shorter)."""
    if reading.offset in ("page0", "page1"):
        page, skip = divmod(offset, limit)
        return page + (1 if reading.offset == "page1" else 0), skip
    return offset, 0


def trusts_count(reading: Reading, *, filtered: bool, local_filter: bool) -> bool:
    """Whether ``job_count`` is the number of jobs the caller asked for: only when it counts the
    query's own matches (``filtered``, or ``unfiltered`` for a query without filters) and nothing
    is filtered here afterwards."""
    if local_filter:
        return False
    if reading.job_count == "filtered":
        return True
    return reading.job_count == "unfiltered" and not filtered


# --- deciding -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Probe:
    """One calibration answer: ``None`` jobs = the request was refused (HTTP 400)."""

    offset: int
    limit: int
    job_count: int | None = None
    jobs: tuple[Job, ...] | None = ()
    status: str | None = None
    graph_name: str | None = None
    #: Whether the answer's times carried no zone (``None``: no times in it).
    naive: bool | None = None

    @property
    def refused(self) -> bool:
        return self.jobs is None

    @property
    def ids(self) -> list[str]:
        return [j.job_id for j in self.jobs or ()]


@dataclass(frozen=True, slots=True)
class Evidence:
    """The probes :func:`decide` reads, by role."""

    #: offset 0, limit L, no filter.
    head: Probe
    #: offset 1, limit L, no filter.
    second: Probe
    #: a graph name no job has.
    nothing: Probe
    #: one probe per status word tried (``waiting``, ``pending``, ``partiallyFailed``, …).
    statuses: tuple[Probe, ...] = field(default_factory=tuple)
    #: offset 2, limit L, no filter — asked only when offset 1 repeated offset 0 (page numbers
    #: from 1): the only probe that shows whether more jobs exist then.
    third: Probe | None = None


def decide(ev: Evidence, previous: Reading = UNDECIDED) -> Reading:
    """The reading the probes show; points they cannot show keep ``previous``'s value."""
    head, second = ev.head, ev.second
    a, b = head.ids, second.ids
    offset = previous.offset
    cap = previous.limit_cap
    if len(a) >= 2:
        if b and b == a[: len(b)] and b[0] == a[0]:
            offset = "page1"
        elif b and b[0] == a[1]:
            offset = "item"
        elif not set(a) & set(b):
            offset = "page0"
    elif not a and b:
        offset = "page1"
    elif len(a) == 1 and not b:
        offset = "zero" if previous.offset in (UNKNOWN, "zero") else previous.offset
    elif len(a) == 1 and b == a:
        offset = "page1"
    c = ev.third.ids if ev.third is not None else []
    beyond = set(b) | set(c)
    # A full page shorter than asked while more jobs exist: limit is capped.
    more = bool(beyond - set(a)) or (offset == "item" and len(b) >= len(a) >= 2)
    if 0 < len(a) < head.limit and more:
        cap = len(a)

    job_count = previous.job_count
    counted = [p for p in (head, second, ev.third) if p is not None and p.job_count is not None]
    if ev.nothing.job_count is not None and ev.nothing.job_count > 0 and not ev.nothing.jobs:
        job_count = "unfiltered"
    elif head.job_count is None:
        job_count = "page"  # no count at all: nothing to trust
    elif any(p.job_count is not None and p.job_count > len(p.ids) for p in counted):
        # A count beyond the page it came with is no page length.
        job_count = "filtered"
    elif head.job_count == len(a) and bool(beyond - set(a)):
        job_count = "page"

    status_filter = previous.status_filter
    refused = set(previous.refused)
    waiting = previous.waiting_word
    statuses_seen = {j.status for j in head.jobs or ()}
    for probe in ev.statuses:
        word = probe.status or ""
        if probe.refused:
            refused.add(word)
            continue
        refused.discard(word)
        wanted = {"waiting": JobStatus.PENDING, "pending": JobStatus.PENDING}.get(word, word)
        others = [j for j in probe.jobs or () if j.status != wanted]
        if others:
            status_filter = "ignored"
        elif statuses_seen - {wanted} and status_filter != "ignored":
            # The job center holds other statuses and this answer left them out: it filters.
            status_filter = "all"
        if word in ("waiting", "pending") and waiting == UNKNOWN:
            waiting = word
    if waiting == UNKNOWN:
        refused_both = {"waiting", "pending"} <= refused
        if not refused_both:
            for word in ("waiting", "pending"):
                if any(p.status == word and not p.refused for p in ev.statuses):
                    waiting = word
                    break
    times = previous.times
    naive = [p.naive for p in (head, second, *ev.statuses) if p.naive is not None]
    if naive:
        times = "naive" if any(naive) else "aware"
    return Reading(
        job_count=job_count,
        offset=offset,
        status_filter=status_filter,
        refused=frozenset(refused - {"pending"}) if waiting == "pending" else frozenset(refused),
        waiting_word=waiting,
        limit_cap=cap,
        times=times,
        naive_offset_min=previous.naive_offset_min if times == "naive" else 0,
    )


def naive_offset_hint(times: Sequence[datetime], now: datetime, *, slack: timedelta = timedelta(minutes=10)) -> int:
    """Minutes east of UTC that naive times (read as UTC) must be written in, given that none of
    them can lie in the future: the smallest whole hour that brings the latest back to ``now``
    (within ``slack`` for clock differences). 0 when none is ahead. A lower bound: the newest
    job (one that just began) shows the true offset."""
    if not times:
        return 0
    ahead = max(times) - now - slack
    if ahead <= timedelta(0):
        return 0
    hours = -(-ahead // timedelta(hours=1))
    return int(min(hours, 14) * 60)


def describe(reading: Reading) -> list[tuple[str, str, bool]]:
    """One ``(point, what it means for ges-bot, is a fallback)`` line per point, for ``ges-bot check``
    and the log."""
    out: list[tuple[str, str, bool]] = []
    jc = reading.job_count
    out.append(
        (
            "job_count",
            {
                "filtered": "filtered total",
                "unfiltered": "the unfiltered total — not trusted for filtered listings; reading until an empty page",
                "page": "the page's length — not trusted; reading until an empty page",
            }.get(jc, "not decided yet (no jobs to compare) — reading until an empty page"),
            jc != "filtered",
        )
    )
    off = reading.offset
    out.append(
        (
            "offset",
            {
                "item": "counts jobs",
                "page0": "a page number from 0 — paging by page number",
                "page1": "a page number from 1 — paging by page number",
                "zero": "not decided yet (one job) — reading from offset 0 only",
            }.get(off, "not decided yet (no jobs) — reading from offset 0 only"),
            off not in ("item", "page0", "page1"),
        )
    )
    sf = reading.status_filter
    if sf == "ignored":
        out.append(("status filter", "ignored by GES — listing without it and filtering here", True))
    elif sf == UNKNOWN:
        out.append(("status filter", "not decided yet (no jobs) — listing without it and filtering here", True))
    else:
        refused = sorted(reading.refused - {"waiting", "pending"})
        if refused:
            out.append(("status filter", f"{', '.join(refused)} refused — listing without it and filtering here", True))
        else:
            out.append(("status filter", "every status accepted", False))
    ww = reading.waiting_word
    out.append(
        (
            "waiting word",
            {
                "waiting": "status=waiting",
                "pending": "status=pending (waiting refused)",
            }.get(ww, "neither accepted or not decided — filtering pending jobs here"),
            ww not in WAITING_WORDS,
        )
    )
    out.append(
        (
            "limit",
            f"capped at {reading.limit_cap} — paging by {reading.limit_cap}" if reading.limit_cap else "as asked",
            False,
        )
    )
    if reading.times == "naive":
        hours = reading.naive_offset_min / 60
        zone = "UTC" if not reading.naive_offset_min else f"UTC{hours:+g}"
        out.append(("times", f"without a zone, read as {zone}", False))
    else:
        out.append(("times", "with a zone" if reading.times == "aware" else "not seen yet", False))
    return out
