"""The job watcher's shell: one poll tick per GES project = fetch (cheaply) → diff → route → commit.

This module owns *how much* the bot asks the job center each tick and the tick's bookkeeping
(lease, poll-state cursor, error recording, scheduling). It decides nothing about events
(``watch.diff`` does) or recipients (``notify.routing`` does), and it never renders or posts:
what it produces lands in the store in one ``commit_tick`` transaction, outbox rows included.

Fetch strategy
--------------
The cost of a tick on the GES API grows with the number of active and newly finished jobs, not
with the size of the job center's history:

1. **Active lists.** ``status=waiting`` then ``status=running``, no date filter, every page (few
   jobs). Waiting is listed before running and both before the terminal lists, in the direction
   jobs move, so a job changing state mid-tick is seen twice (diff keeps the later state) rather
   than not at all.
2. **Terminal lists.** For each of ``failed``, ``partiallyFailed`` and ``success``: a listing with
   only a lower bound, ``start_time`` = the UTC date of ``min(now, last_success_at)`` minus one
   day. The extra day covers the date boundary whichever zone GES reads dates in and whichever
   field (begin or end time) it filters on; taking the date from the last *successful* tick makes
   the first tick after an outage of GES or of the bot reach back to where it stopped (catch-up).
   Jobs never leave a terminal status, so each listing only grows; the poll-state cursor keeps
   its ``job_count`` (key ``"<status>@<date>"``), as a lower bound of how many of its jobs the
   store already knows in that status. With a remembered count m, the first request is the page
   at offset m — the *tail probe*: it gives the count, and in ascending order (the reference
   page's) it holds the jobs added since, while an unchanged count makes it empty (a few hundred
   bytes instead of a page of jobs the store already knows):

   - count unchanged → nothing new of that status (one request, an empty page);
   - count grew by k and the probe holds k jobs not known in that status → done (one request);
   - else up to two pages further back, just before the probe (a job that ran a while sits a
     little before the end: jobs begun after it finished first) → done if the k are there;
   - else page 1 and the search: pages until k such jobs are found, from both ends alternately
     (page 1, last, 2, second to last…). In a random order (or when a long job finished, whose
     begin time sits mid-list) this degenerates to a full scan of the window, still bounded by
     two days of jobs;
   - count shrank (jobs deleted), a new date (once a day), or no memory yet → one full listing.

   A descending order puts new jobs on page 1: when page 1 is where a listing's new jobs were
   found, the cursor notes it (``head:<status>``) and the next ticks read page 1 first instead
   of probing the tail (one request whether or not the count changed), until page 1 stops
   holding them.

   Only jobs not yet known in that status go to diff (a known one would be a write for nothing).
   The remembered count never exceeds what the store knows (an over-count would hide new jobs):
   after a partial search it is memory + found, after a full read it is what was seen and is
   known, and an unchanged count keeps the memory. So a job missed because the list shifted
   between pages is still unknown next tick, makes the count exceed the memory, and is found
   then. The blind spot: a job *deleted* from the window while another is added cancels out in
   the count (or, with more added, leaves the memory one too high); the addition is then found
   by a later growth that reads past it, or at the next full listing (the next day at the latest).
3. **Vanished jobs.** Active snapshots that are in neither active list nor found in the terminal
   lists (a job that ran for days, whose date is before the window if GES filters on begin time)
   are looked up with ``graph_name`` and ``start_time`` = their begin date minus one day, no
   status, paging until found. A job still not found is kept as it is with a warning (it may
   have been deleted) and no event; it is looked up again with an exponential back-off (kept in
   the cursor) so a deleted job does not cost a scan every tick.
4. **Baseline.** A project never polled before is listed whole (all statuses, no filter) once,
   committed every ``baseline_batch_pages`` pages (20) so that memory holds one batch and the
   active jobs, never the job center (peak RSS flat in history: ``bench/bench_memory.py``), to
   record history silently (``diff``'s baseline: only failures within the backfill window
   alert). The next tick lists each terminal window fully once, then the cheap path applies.

Measured with ``bench/bench_poll_cost.py`` (``docs/benchmarks.md``; ~20 jobs running, page size
100), before the arrivals scan (below) added one request: a steady-state tick costs 5, 6 and 7
requests (13, 72 and 109 KiB) at 1 000, 10 000 and 100 000 jobs a day in ascending order, 5 in
descending order, whatever the history; a naive poller listing today costs 10, 97 and 962
requests. In a random order the terminal search degenerates (~165 requests at 10 000 a day).

Readings and degrading
----------------------
Before the fetch the tick makes sure the client knows this GES's reading of the list API
(``JobCenterClient.calibrate``; kept per project in the cursor as ``reading:*`` and redone when an
answer contradicts it, or every few minutes while a point is undecided). Statuses whose filter
cannot be used (refused with a 400, ignored by GES, or not decided yet) are not listed by status.
One *arrivals* scan (key ``*@<date>``) of the date window without a status filter, with the same
tail probe and memory, takes every job not known at all, whatever its status: a job that began
and ended between two ticks in a status no filter names (``cancelled``, or ``partiallyFailed``
where that filter is refused) is found there (one request a steady tick). Active jobs that change
status are found by the active and terminal lists that work, else by the vanished lookup.
Where the date filter leaves running jobs out (it is on the end time: learnt when a whole read
of the arrivals window held none of the running jobs begun inside it; cursor ``window:active``),
a job enters the arrivals window when it ends, and counts there as new.

Without a ``job_count`` to trust (it counts the page, or the whole job center), the tail probe
reads from the remembered length to an empty page, and that length stands in for the count; a
whole read leaves the memory the next probe starts from. Where GES counts offsets in pages, the
client turns item offsets into the page holding them, and the walk back goes by whole pages. Naive times that put a job in the future give the zone they are written in
(``reading.naive_offset_hint``); the tick's jobs are corrected at once.

Each scan (active list, terminal list, arrivals, vanished lookup) fails alone when the failure is
its own (a refused query that cannot be broadened further, an unreadable answer): the tick commits
what the others found and is recorded *degraded* (``TickResult.degraded``: last_error set,
last_success_at kept, so the next tick's window reaches back and the failed scan's memory is not
advanced; ``last_error_kind`` and ``failing_since`` are set as for a failed poll, so a scan that
keeps failing reaches the ops watch). GES down (no answer, 5xx after retries), refusing the
credentials, or an answer past the byte cap (``UnusableAnswerError``) fails the tick as a whole,
as does every scan failing.

Budget
------
A tick may ask GES for at most ``max_pages`` pages and must not start a request after its
``deadline`` (:class:`TickBudget`; ``GES_BOT_TICK_MAX_PAGES``, ``GES_BOT_TICK_DEADLINE``), so a
``job_count`` of a million, a GES that answers slowly or a history of a million jobs can neither
hold the tick (and the database) for ever nor fill memory. A tick that runs out stops asking,
diffs and commits what it read, and the rest continues next tick; nothing is lost because every
cursor stays a lower bound of what was read:

- the baseline remembers how far it read (``baseline:offset``) and continues there; the project
  counts as baselined only once the whole list was read;
- a terminal search cut short that found what the count says is new keeps ``memory + found``;
  one cut short of it forgets the memory (which may be too low — a deletion, jobs that moved
  under a pass — and then no search finds enough), so the listing is read whole next, as a pass;
  a listing not reached keeps its memory;
- a listing read whole (no memory yet, a new date, a shrunk count) is a *pass* in offset order
  that goes on next tick where it stopped (``whole:<key>:…``: offset, jobs known so far, and the
  last job read as an anchor, so jobs inserted ahead of it are not counted twice; jobs inserted
  ahead of the pass's first job are counted from page 1 when it ends), so a window larger than
  one tick's budget is still read whole once and then remembered; a resumed pass does not read
  page 1 again until it ends;
- vanished jobs are not followed in a cut tick (an active list read in part would make every
  unread active job look vanished), and their back-off is kept;
- the terminal window is dated from ``complete_at``, the start of the last tick that read
  everything, not from the last commit: a run of cut ticks never moves the window past jobs it
  did not read;
- the budget bounds everything the tick asks: the calibration (its requests charged as pages, not
  begun past the deadline), the active lists, the terminal lists, the arrivals scan (after the
  status lists, so it is the first left unread) and the vanished lookups.

A *cut* scan is not a *failed* one: what it read was right, its cursor is a lower bound and it
goes on next tick (``TickReport.partial``, no error recorded, ``last_success_at`` advances);
a failed scan read wrong or nothing, keeps its memory as it was and degrades the tick
(``TickReport.degraded``, an error recorded). A tick may be both; neither moves ``complete_at``.

A cap for bad orders
--------------------
A tick first probes every listing and defers the searches; when together they could read more
pages than one listing of the whole window (every status at once: what a naive poller reads each
tick), the tick reads that listing instead, a few pages at a time, and every scan takes its
status from it (its memory becomes what the store knows, as after a full read). In an order that
is no order this is so every tick: the cursor then says so (``order:unsorted``, for 60 ticks) and
the next ticks list the window straight away, without probes, and without the active lists when
every active job began inside the window (the listing shows them). A listing the budget could not
finish is not chosen (the scans, each bounded, go on instead). ``bench/poll_cost_quick.py
--order random``: a tick reads no more than the naive poller.

Fast lane
---------
Between two ticks, :meth:`Poller.fast_tick` (every ``GES_BOT_FAST_INTERVAL``, 12 s) reads the end
of the arrivals window: the rows from the oldest active job to the end (as many as the last look
found there, else estimated at the window's rate; a page at least, 1,000 rows at most) and, after
them, room for new ones (another request only if more came). In an ascending order the jobs
running now and those that just ended sit there, so a job seen running that fails is alerted
within seconds, and so is a job that began and ended since (a new job lands at the end whatever
its status); a fast tick where nothing changed is one request. What it records moves the memories
with it (the arrivals count the jobs new to the store, each status the jobs newly known in it:
lower bounds still), so the next tick's probes stay cheap. Only the replica holding the poll lease
runs it (renewing the lease: replicas still poll a project once), never while a normal tick of
the project runs, and not while the last one failed (the error stays until a normal tick
succeeds).

A look *serves* the project (``TickReport.served``) when it provably saw what the scans would
alert on: it read to the end of the window, every job the store has as active was among its rows
(an active job before them is read back for once, then not until the next scan), and GES's count
is the remembered one plus the jobs new to the store it read (so none was added before its rows —
an order not quite ascending — and none deleted). Then the scheduled poll (:meth:`Poller.poll`,
every ``GES_BOT_POLL_INTERVAL``) may leave the full scans to ``GES_BOT_SCAN_INTERVAL`` (600 s,
:class:`Cadence`): it asks nothing while this replica's last complete tick is younger than that
and every look since served, the last one recently. Anything else makes the next poll scan, so
where the fast lane cannot see, nothing is slower than the poll interval: an order that does not
put new jobs last (``head:*``, ``order:unsorted``: the looks are skipped), dated listings that
leave running jobs out, no memories yet (the first minute), a reading not learnt, another
replica's lease, the fast lane off, a failed or cut look or scan, an active job out of reach (a
long run), a count that does not add up. What a serving look cannot see waits for the scans, at
most ``GES_BOT_SCAN_INTERVAL`` + half a poll interval: a deletion that an addition before the
look's rows cancels out in the count (the scans' own blind spot, above). (A job it reads that has
run past ``stuck_after`` is reported stuck by the look itself.)

Freshness: a quiet look that serves records the tick's success (an empty commit: last_success_at)
when the last one is a poll interval old, so ``/gesjobs`` (``GES_BOT_ANSWER_MAX_AGE``), ``/healthz``
and the ops watch (``GES_BOT_BLIND_AFTER``) see the project as polled within a poll and a fast
interval while the scans wait; a look that commits changes records one anyway.

Measured with ``bench/fast_lane_quick.py`` (defaults, 10k jobs a day, ~20 running;
``docs/benchmarks.md`` §7): ~340 GES requests an hour (370 polling every 60 s before the fast
lane), alert latency p95 11 s for jobs seen running.

Every tick runs under the lease ``poll:<alias>`` (``Store.try_lease``): another replica holding it
means the tick is skipped. The lease is short (the claim lease, 15 s by default); it is renewed
each tick and, between ticks, by the runtime's heartbeat (``renew_lease``), so one replica stays
the poller while it lives and another takes over within a lease and one poll interval after it
dies; ``release()`` gives it up at once (shutdown, ``ges-bot poll --once``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Protocol, runtime_checkable

from ges_bot import faultpoints
from ges_bot.clock import Clock, utc_now
from ges_bot.config import ProjectSettings
from ges_bot.domain import ACTIVE_STATUSES, Job, JobEvent, QueryStatus, Subscription
from ges_bot.errors import ApiError, AuthError, GesBotError, JobCenterError, TransportError, UnusableAnswerError
from ges_bot.jobcenter.client import JobList, ListQuery, Page
from ges_bot.jobcenter.reading import ASSUMED, Reading, naive_offset_hint, wire_status
from ges_bot.metrics import EVENTS, GES_REQUESTS, POLL_DURATION, POLL_TICKS
from ges_bot.notify.routing import RoutingResult, route
from ges_bot.store.api import PollState, Snapshot, TickCommit, TickResult, WatchStore
from ges_bot.watch.blindness import error_kind
from ges_bot.watch.diff import DiffResult, diff, outcome_key

__all__ = [
    "Cadence",
    "Calibrating",
    "JobSource",
    "PlannedQuery",
    "Poller",
    "TickBudget",
    "TickReport",
    "describe_error",
    "plan_queries",
    "run_tick",
]

log = logging.getLogger(__name__)

#: The terminal statuses listed each tick, in the request vocabulary.
TERMINAL_QUERIES: tuple[QueryStatus, ...] = (
    QueryStatus.FAILED,
    QueryStatus.PARTIALLY_FAILED,
    QueryStatus.SUCCESS,
)
_VANISHED = "vanished:"
#: Cursor key prefix: ``head:<status>`` = 1 while a terminal listing's new jobs turn up on page 1.
_HEAD = "head:"
#: Pages read back from the tail probe before page 1 and the search from both ends.
_TAIL_PAGES = 2
_MAX_BACKOFF = timedelta(hours=6)
_DEFAULT_PAGE_SIZE = 100
#: The arrivals scan's status: any (see "Readings and degrading").
_ANY = "*"
#: Cursor key: when the reading was last calibrated (epoch seconds).
_CALIBRATED_AT = "reading:at"
#: Cursor key: for how many more ticks the window is listed whole at once instead of probed and
#: searched per status (the searches cost more than that listing: an order that is no order).
_UNSORTED = "order:unsorted"
#: The fast lane's page starts this share of a page before the end of what is known: most of it
#: holds the jobs begun last, the rest is room for new ones (more: a second page).
_FAST_HEADROOM = 0.2
#: The most rows the fast lane asks for at once (to reach back to the oldest running job).
_FAST_MAX_LIMIT = 1000
#: Rows the fast lane reads back beyond the oldest active job the last look found.
_FAST_SLACK = 2
#: Ticks the full listing is kept to before the cheap path is tried again.
_UNSORTED_TICKS = 60
#: Cursor key: whether dated listings hold running jobs (1) or leave them out (2: on the end time).
_WINDOW_ACTIVE = "window:active"
#: An undecided reading (too few jobs to tell) is calibrated again after this long.
_RECALIBRATE_UNDECIDED = timedelta(minutes=5)
_ACTIVE_QUERIES: tuple[QueryStatus, ...] = (QueryStatus.WAITING, QueryStatus.RUNNING)
#: Cursor key: the next offset of a baseline that did not finish in one tick.
_BASELINE = "baseline:offset"
#: Cursor key: when (epoch seconds) the last tick that read everything began.
_COMPLETE = "complete_at"
#: Cursor key prefix of a terminal listing read whole over several ticks:
#: ``whole:<key>:offset`` (where the next tick goes on), ``…:known`` (jobs of the pages read so
#: far that the store knows in the status) and ``…:anchor`` (a hash of the last job read).
_WHOLE = "whole:"
#: Defaults of the per-tick budget (``GES_BOT_TICK_MAX_PAGES``, ``GES_BOT_TICK_DEADLINE``).
DEFAULT_TICK_MAX_PAGES = 200
DEFAULT_TICK_DEADLINE_S = 30.0
#: Pages a baseline asks for at once.
_BASELINE_BATCH = 4
#: Pages a baseline reads between two commits (``Poller.baseline_batch_pages``): what it holds
#: in memory at most, whatever the history (20 pages of 100 jobs: a few MiB).
DEFAULT_BASELINE_BATCH_PAGES = 20
#: The most requests one calibration sends (``JobCenterClient.calibrate``: two pages of the list,
#: a count, two or three status probes, a third page when GES may ignore offsets).
CALIBRATION_REQUESTS = 7


class _Spent(Exception):
    """The tick's budget is used up: stop asking GES (caught inside the tick, never raised out)."""


@dataclass
class TickBudget:
    """How much one tick may ask of GES: at most ``max_pages`` pages, none begun after ``deadline``
    (a ``clock()`` reading). Shared by the tick's listings, which run concurrently."""

    max_pages: int
    deadline: float
    clock: Callable[[], float] = time.monotonic
    pages: int = 0
    spent: bool = False

    def reserve(self, wanted: int = 1) -> int:
        """Take up to ``wanted`` pages; how many were granted (0 once the budget is spent)."""
        if self.spent or self.clock() >= self.deadline or self.pages >= self.max_pages:
            self.spent = True
            return 0
        granted = min(wanted, self.max_pages - self.pages)
        self.pages += granted
        return granted

    def left(self) -> bool:
        """Whether another page may be asked for (without taking it); marks the budget spent if not."""
        if self.spent or self.clock() >= self.deadline or self.pages >= self.max_pages:
            self.spent = True
        return not self.spent

    def take(self) -> None:
        """One page, or :class:`_Spent`."""
        if not self.reserve(1):
            raise _Spent


class JobSource(Protocol):
    """What the poller needs of a job-center client (``JobCenterClient`` is one)."""

    @property
    def requests_sent(self) -> int: ...

    async def list_page(self, query: ListQuery, offset: int, limit: int) -> Page: ...

    async def list_jobs(self, query: ListQuery | None = None) -> JobList: ...

    def iter_pages(self, query: ListQuery | None = None) -> AsyncGenerator[Page, None]: ...


@runtime_checkable
class Calibrating(Protocol):
    """A job source that learns the GES's reading of the list API (``JobCenterClient`` is one)."""

    reading: Reading
    stale: bool
    calibrated: bool

    async def calibrate(self) -> Reading: ...

    def use_reading(self, reading: Reading) -> None: ...

    def learn_naive_offset(self, minutes: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Cadence:
    """How often a project is looked at (module docstring, "Fast lane"): the scheduled poll every
    ``poll_s``, the fast lane every ``fast_s`` (0: off), and — while the fast lane serves — a full
    scan only every ``scan_s``. The default never defers a scan (every poll is a full one)."""

    poll_s: float = 60.0
    fast_s: float = 0.0
    scan_s: float = 0.0

    @property
    def defers(self) -> bool:
        """Whether a scheduled poll may leave the scans to the fast lane: a fast lane that looks
        more often than the polls, and a scan interval longer than the poll interval."""
        return 0 < self.fast_s < self.poll_s < self.scan_s


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one tick did. ``events`` are those newly recorded (or, in a dry run, those found)."""

    project: str
    at: datetime
    events: tuple[JobEvent, ...] = ()
    requests: int = 0
    duration: float = 0.0
    skipped: bool = False
    baseline: bool = False
    deliveries: int = 0
    #: Outbox rows written (the delivery worker may be woken when non-empty).
    outbox_ids: tuple[int, ...] = ()
    dry_run: bool = False
    #: Active jobs that could not be found anywhere this tick (deleted?).
    missing: tuple[str, ...] = ()
    #: The tick ran out of its budget (pages or time): what was read is committed, the rest
    #: continues next tick.
    partial: bool = False
    #: Set when a scan failed and the tick committed only what the others found: what failed.
    degraded: str | None = None
    #: A scheduled poll that left the scans to the fast lane (it serves; the last full scan is
    #: younger than the scan interval): no request, the lease renewed.
    deferred: bool = False
    #: A fast tick that saw every active job and every arrival since the last look (the scans
    #: may wait for it); False for a normal tick.
    served: bool = False


@dataclass
class _Scan:
    """Working memory of one status listing within a tick."""

    status: str
    key: str
    remembered: int | None
    seen: set[str] = field(default_factory=set)
    new_ids: set[str] = field(default_factory=set)
    #: Listed whole (no usable memory); the cursor becomes what was seen.
    full: bool = False
    #: Every page was read.
    exhausted: bool = False
    #: GES gave a job_count (without one there is nothing to remember).
    counted: bool = True
    #: The count was the remembered one: one page only.
    unchanged: bool = False
    #: Read page 1 first (new jobs turned up there last time: a descending order).
    head_first: bool = False
    #: Where this tick's new jobs were all found: "head" (page 1), "tail" (probe or last page).
    found_at: str | None = None
    #: The budget ran out before the first page: nothing is known of this listing this tick.
    unread: bool = True
    #: A whole read (a *pass*) in offset order, continued across ticks: where it stands.
    pass_offset: int | None = None
    pass_known: int = 0
    pass_anchor: int | None = None
    pass_ids: set[str] = field(default_factory=set)
    pass_done: bool = False
    #: The first row of the pass's page 1 (jobs inserted ahead of it are counted when it ends).
    pass_head: int | None = None
    #: How many jobs unknown in the status the count says there are (a scan with a memory).
    need: int = 0
    #: The last job_count GES gave for this listing this tick.
    latest_count: int | None = None
    #: The scan failed (its memory is kept as it was).
    failed: bool = False
    #: An active job was among the rows read (arrivals: the date window holds running jobs).
    saw_active: bool = False
    #: The listing's lower date bound.
    query_start: date | None = None
    #: The search this scan still needs (its listing and page 1), deferred so that the tick can
    #: weigh all searches against one full listing of the window (the cap for bad orders).
    pending: tuple[ListQuery, Page] | None = None
    #: How many jobs GES said the listing holds (the probe's or page 1's count).
    count_seen: int | None = None


@dataclass(frozen=True, slots=True)
class PlannedQuery:
    """One listing a steady tick makes (``ges-bot check`` runs the same ones)."""

    #: ``active`` (every page, each tick), ``terminal`` or ``arrivals`` (tail probe and memory).
    kind: str
    #: The status word the scan is about (``*``: any, for arrivals).
    status: str
    query: ListQuery

    @property
    def name(self) -> str:
        since = f" since {self.query.start_date.isoformat()}" if self.query.start_date else ""
        return f"{'new jobs (any status)' if self.status == _ANY else 'status=' + self.status}{since}"


def plan_queries(reading: Reading, start: date) -> list[PlannedQuery]:
    """The listings of a steady tick under ``reading``, with the terminal window starting at
    ``start``: the active lists and terminal lists whose status filter works, and — when some
    status cannot be asked for — the arrivals scan (see the module docstring)."""

    def usable(status: str) -> bool:
        return not wire_status(reading, status)[1]

    plan = [PlannedQuery("active", s.value, ListQuery(status=s)) for s in _ACTIVE_QUERIES if usable(s)]
    plan += [
        PlannedQuery("terminal", s.value, ListQuery(status=s, start_date=start)) for s in TERMINAL_QUERIES if usable(s)
    ]
    # Always: a job that begins and ends between two ticks in a status no filter names (cancelled,
    # Failed, complete…, or one whose filter is refused) is found nowhere else. When the active
    # lists cannot be asked for, new jobs are looked for in the whole list: a date filter on the
    # end time (one reading) leaves a running job out of every window.
    active_listed = all(usable(s) for s in _ACTIVE_QUERIES)
    plan.append(PlannedQuery("arrivals", _ANY, ListQuery(start_date=start if active_listed else None)))
    return plan


def _page_offsets(count: int, limit: int) -> list[int]:
    """Offsets of every page but the first, alternating from both ends: last, second, second to last…"""
    last = (count - 1) // limit if count > 0 else 0
    rest = list(range(1, last + 1))
    order: list[int] = []
    while rest:
        order.append(rest.pop())
        if rest:
            order.append(rest.pop(0))
    return [p * limit for p in order]


def _anchor(job_id: str) -> int:
    """A job id as a small int (the cursor holds ints)."""
    return zlib.crc32(job_id.encode("utf-8", "surrogatepass"))


def describe_error(exc: BaseException) -> str:
    """A sentence for logs, ``record_poll_error`` and the command line (GES text kept, no secrets)."""
    if isinstance(exc, GesBotError):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


class Poller:
    """Polls one GES project. Holds no state between ticks: everything lives in the store."""

    def __init__(
        self,
        project: ProjectSettings,
        client: JobSource,
        store: WatchStore,
        *,
        config_subscriptions: Sequence[Subscription] = (),
        stuck_after: timedelta = timedelta(hours=6),
        backfill: timedelta = timedelta(0),
        clock: Clock = utc_now,
        replica: str = "ges-bot",
        lease_ttl: timedelta | float = timedelta(minutes=5),
        page_size: int | None = None,
        max_pages: int = DEFAULT_TICK_MAX_PAGES,
        tick_deadline: timedelta | float = DEFAULT_TICK_DEADLINE_S,
        monotonic: Callable[[], float] = time.monotonic,
        baseline_batch_pages: int = DEFAULT_BASELINE_BATCH_PAGES,
        cadence: Cadence | None = None,
    ) -> None:
        if max_pages < 1:
            raise ValueError(f"max_pages must be at least 1, not {max_pages}")
        self.project = project
        self.alias = project.alias
        self.client = client
        self.store = store
        self.config_subscriptions = tuple(config_subscriptions)
        self.stuck_after = stuck_after
        self.backfill = backfill
        self.clock = clock
        self.replica = replica
        self.lease_ttl = lease_ttl if isinstance(lease_ttl, timedelta) else timedelta(seconds=lease_ttl)
        # The client's own page size when it has one, so the poller's offsets match its pages.
        self.page_size: int = page_size or int(getattr(client, "page_size", 0) or _DEFAULT_PAGE_SIZE)
        self.concurrency: int = max(1, int(getattr(client, "concurrency", 0) or _BASELINE_BATCH))
        self.max_pages = max_pages
        self.tick_deadline_s = (
            tick_deadline.total_seconds() if isinstance(tick_deadline, timedelta) else float(tick_deadline)
        )
        self.monotonic = monotonic
        self.baseline_batch_pages = max(1, baseline_batch_pages)
        self._ticking = asyncio.Lock()
        #: Whether the last attempt to take or renew the poll lease succeeded (renew_lease renews it).
        self.holds_lease = False
        self.cadence = cadence or Cadence()
        # What lets a scheduled poll defer its scans (``_scans_may_wait``), kept in this process
        # only: a restarted or new replica scans at once and at every poll until its own fast
        # lane serves. When the last full tick (complete, not cut, not degraded) began:
        self._scanned_at: datetime | None = None
        # When the fast lane last served, and whether some fast look since the last full tick
        # did not (skipped, failed, cut, or blind to an active job or an arrival).
        self._served_at: datetime | None = None
        self._fast_gap = True
        # The fast lane's reach: rows from the end of the arrivals window back to the oldest
        # active job at the last look (None: not looked yet), and active jobs it could not reach
        # (not read back for again until the next full scan).
        self._fast_back: int | None = None
        self._fast_unreachable: set[str] = set()

    def budget(self) -> TickBudget:
        """A fresh budget for one tick, starting now."""
        return TickBudget(self.max_pages, self.monotonic() + self.tick_deadline_s, self.monotonic)

    @property
    def lease_name(self) -> str:
        return f"poll:{self.alias}"

    async def release(self) -> None:
        """Give up the poll lease (so another replica may poll at once)."""
        self.holds_lease = False
        await self.store.release_lease(self.lease_name, self.replica)

    async def renew_lease(self) -> bool:
        """The heartbeat: renew the poll lease if this replica holds it (never take it from
        another). Returns whether it is still held."""
        if self.holds_lease:
            self.holds_lease = await self.store.try_lease(
                self.lease_name, self.replica, self.clock(), self.lease_ttl.total_seconds()
            )
        return self.holds_lease

    async def poll(self) -> TickReport:
        """The scheduled poll: a full tick, unless the fast lane stands for its scans (then no
        request, only the lease renewed: ``deferred``). See the module docstring, "Fast lane"."""
        now = self.clock()
        if self._scans_may_wait(now):
            # Renewed here too (the fast ticks and the heartbeat renew it as well): a deferred
            # poll must not let the lease lapse, nor defer for a replica that lost it.
            self.holds_lease = await self.store.try_lease(
                self.lease_name, self.replica, now, self.lease_ttl.total_seconds()
            )
            if self.holds_lease:
                POLL_TICKS.labels(self.alias, "deferred").inc()
                return TickReport(project=self.alias, at=now, deferred=True)
        return await self.tick()

    def _scans_may_wait(self, now: datetime) -> bool:
        """Whether the full scans may wait: the cadence defers, this replica scanned completely
        less than a scan interval ago (less half a poll interval, so the scan falls on the poll
        nearest to it, not a whole poll interval late), and every fast look since then served,
        the last one recently (a fast lane that stopped looking stands for nothing)."""
        c = self.cadence
        if not c.defers or self._scanned_at is None or self._served_at is None or self._fast_gap:
            return False
        if not self.holds_lease or (now - self._served_at).total_seconds() > 3 * c.fast_s:
            return False
        return (now - self._scanned_at).total_seconds() + c.poll_s / 2 < c.scan_s

    async def tick(self, *, dry_run: bool = False) -> TickReport:
        """One poll: fetch → diff → route → commit. Raises on GES or store errors (nothing is
        written then; the next tick retries from the same state). ``dry_run`` writes nothing,
        not even the lease."""
        now = self.clock()
        started = time.monotonic()
        sent_before = self.client.requests_sent
        if not dry_run:
            self.holds_lease = await self.store.try_lease(
                self.lease_name, self.replica, now, self.lease_ttl.total_seconds()
            )
            if not self.holds_lease:
                POLL_TICKS.labels(self.alias, "skipped").inc()
                return TickReport(project=self.alias, at=now, skipped=True, dry_run=dry_run)
        try:
            # One tick at a time per project in this process: the fast lane waits its turn.
            async with self._ticking:
                if not dry_run:
                    # Until this tick proves complete, the next poll scans (a failed tick raises).
                    self._scanned_at = None
                report = await self._tick(now, dry_run=dry_run)
                if not dry_run and not (report.baseline or report.partial or report.degraded):
                    # A complete scan: the fast lane must serve again from here for the next
                    # polls to defer theirs.
                    self._scanned_at = now
                    self._served_at = None
                    self._fast_gap = False
                    self._fast_unreachable = set()
        finally:
            GES_REQUESTS.labels(self.alias).inc(self.client.requests_sent - sent_before)
        duration = time.monotonic() - started
        POLL_TICKS.labels(self.alias, "degraded" if report.degraded else "ok").inc()
        POLL_DURATION.labels(self.alias).observe(duration)
        return TickReport(
            project=self.alias,
            at=now,
            events=report.events,
            requests=self.client.requests_sent - sent_before,
            duration=duration,
            baseline=report.baseline,
            deliveries=report.deliveries,
            outbox_ids=report.outbox_ids,
            dry_run=dry_run,
            missing=report.missing,
            partial=report.partial,
            degraded=report.degraded,
        )

    # --- the fast lane ----------------------------------------------------------------------

    async def fast_tick(self) -> TickReport:
        """The fast lane (module docstring, "Fast lane"): the end of the arrivals window, usually
        one request, to see within seconds what began lately — a job seen running that ended, a
        job new since — and commit it. Skipped (``skipped``, no request) where it cannot stand for
        the scans: no baseline or memory yet, an order that does not put new jobs last, a reading
        not learnt, a failing or running normal tick, another replica holding the lease.
        ``served`` says whether it stood for them this time (the scheduled polls may then defer
        their scans); anything else — a skip but for a running normal tick, a failure — makes the
        next poll scan."""
        if self._ticking.locked():
            # A normal tick is looking right now: it stands for this look.
            return TickReport(project=self.alias, at=self.clock(), skipped=True)
        served_at: datetime | None = None
        try:
            report = await self._fast_tick()
            served_at = report.at if report.served else None
        finally:
            if served_at is not None:
                self._served_at = served_at
            else:
                self._fast_gap = True
        return report

    async def _fast_tick(self) -> TickReport:
        now = self.clock()
        skipped = TickReport(project=self.alias, at=now, skipped=True)
        client = self.client
        if not self.holds_lease or (isinstance(client, Calibrating) and (not client.calibrated or client.stale)):
            return skipped
        sent_before = client.requests_sent
        started = time.monotonic()
        async with self._ticking:
            state = await self.store.poll_state(self.alias)
            if state is None or state.baselined_at is None or state.consecutive_failures:
                return skipped
            cursor = dict(state.cursor)
            since = min(now, state.last_success_at or now)
            if _COMPLETE in cursor:
                since = min(since, datetime.fromtimestamp(cursor[_COMPLETE], UTC))
            start = since.astimezone(UTC).date() - timedelta(days=1)
            key = f"{_ANY}@{start.isoformat()}"
            known_count = cursor.get(key)
            plan = plan_queries(self._reading(), start)
            if (
                known_count is None
                or cursor.get(_UNSORTED)
                or cursor.get(f"{_HEAD}{_ANY}")
                or cursor.get(_WINDOW_ACTIVE) == 2
                or not any(p.kind == "arrivals" and p.query.start_date == start for p in plan)
            ):
                return skipped
            # Only the replica that polls the project looks between its ticks (and renews it).
            self.holds_lease = await self.store.try_lease(
                self.lease_name, self.replica, now, self.lease_ttl.total_seconds()
            )
            if not self.holds_lease:
                return skipped
            try:
                report = await self._fast(now, cursor, start, key, known_count, state.last_success_at)
            finally:
                GES_REQUESTS.labels(self.alias).inc(client.requests_sent - sent_before)
        POLL_TICKS.labels(self.alias, "fast").inc()
        return replace(report, requests=client.requests_sent - sent_before, duration=time.monotonic() - started)

    async def _fast(
        self,
        now: datetime,
        cursor: dict[str, int],
        start: date,
        key: str,
        known: int,
        last_success_at: datetime | None,
    ) -> TickReport:
        budget = self.budget()
        query = ListQuery(start_date=start)
        headroom = int(self.page_size * _FAST_HEADROOM)
        # The last rows already known (jobs begun lately: the running ones, and those that just
        # ended) and room for the new ones after them. How many known rows to read back: as many
        # as the last look found between the oldest active job and the end (jobs keep their place
        # in an ascending order), else as many as began since the oldest active job did (at the
        # window's rate), so that one request reaches back to it.
        active = await self.store.active_snapshots(self.alias)
        back = self._fast_back
        if back is None:
            back = 0
            begins = [(s.job.begin_time or s.first_seen) for s in active.values()]
            window_s = (now - datetime.combine(start, datetime.min.time(), UTC)).total_seconds()
            if begins and window_s > 0:
                since_oldest = max(0.0, (now - min(begins)).total_seconds())
                back = int(known * since_oldest / window_s * 1.25)
        back = min(max(back, self.page_size - headroom), _FAST_MAX_LIMIT - headroom)
        limit = back + headroom
        first = offset = max(0, known - back)
        rows: list[Job] = []
        count: int | None = None
        read_to_end = False
        while budget.reserve(1):
            page = await self.client.list_page(query, offset, limit)
            rows.extend(page.jobs)
            offset += page.size
            count = page.job_count
            if not page.size or page.job_count is None or offset >= page.job_count:
                read_to_end = page.job_count is not None
                break
        missing = active.keys() - {j.job_id for j in rows}
        room = _FAST_MAX_LIMIT - len(rows)
        if missing - self._fast_unreachable and first > 0 and room > 0 and budget.reserve(1):
            # An active job begun before the page (the estimate fell short, a burst of arrivals
            # since): once, the rows before it, up to the most one look reads. Those still not
            # there (a long run, a job begun before the window, a deleted one) are not read back
            # for again until the next full scan; the fast lane cannot stand for it meanwhile.
            extra = min(first, room)
            page = await self.client.list_page(query, first - extra, extra)
            rows[:0] = page.jobs
            first -= extra
            missing -= {j.job_id for j in page.jobs}
            self._fast_unreachable |= missing
        # Where the oldest job active in GES or in the store sits, for the next look: that many
        # rows back from the end (and a few more, should a deletion shift it).
        places = [i for i, j in enumerate(rows) if j.is_active or j.job_id in active]
        if places and count is not None:
            self._fast_back = max(0, count - (first + places[0])) + _FAST_SLACK
        elif count is not None:
            self._fast_back = 0
        # A job read twice (the list moved between two requests) counts once, in its later state.
        rows = list({j.job_id: j for j in rows}.values())
        previous = await self.store.snapshots(self.alias, [j.job_id for j in rows])
        arrived = {j.job_id for j in rows if j.job_id not in previous}
        # It stands for the scans only when it provably saw everything they would alert on: every
        # job the store has as active (its end, or its deletion, would otherwise wait for a scan)
        # and every arrival — the window's count is the jobs known before plus the new ones read,
        # so none was inserted before the page (an order not quite ascending) or past a page the
        # budget left unread. A deletion in the window breaks the equation too (the scans' count
        # shrank: their full listing sorts it out).
        served = read_to_end and not missing and count == known + len(arrived)

        def due(job: Job) -> bool:
            # New, in another status, or an active job about to be reported stuck (once: its
            # snapshot then says so), which the scans would otherwise report only when they run.
            before = previous.get(job.job_id)
            if before is None or before.job.status != job.status:
                return True
            started = job.begin_time or before.first_seen
            return job.is_active and not before.stuck_reported and now - started >= self.stuck_after

        changed = [j for j in rows if due(j)]
        if not changed:
            if served and (last_success_at is None or (now - last_success_at).total_seconds() >= self.cadence.poll_s):
                # Nothing changed, and the look stood for a poll: say so (last_success_at) about
                # once a poll interval — what /gesjobs (GES_BOT_ANSWER_MAX_AGE), /healthz and the
                # ops watch (GES_BOT_BLIND_AFTER) judge a project's freshness by, which the
                # deferred scans would otherwise leave a scan interval old. Not every look: a
                # quiet fast tick stays a read.
                await self._commit(now, DiffResult((), (), ()), RoutingResult((), ()), cursor)
            return TickReport(project=self.alias, at=now, served=served)
        outcomes = await self.store.outcomes(self.alias, sorted({outcome_key(j) for j in changed if j.is_terminal}))
        result = diff(self.alias, previous, changed, outcomes, now, stuck_after=self.stuck_after)
        after = {s.job.job_id: s.job.status for s in result.snapshots}
        # Every memory stays a lower bound of what the store knows in its listing: the arrivals
        # count the jobs new to the store, each status the jobs newly known in it (all of them
        # in its window, which is the arrivals' window).
        for job in changed:
            before = previous.get(job.job_id)
            status = after.get(job.job_id)
            if before is None and key in cursor:
                cursor[key] += 1
            if status is not None and (before is None or before.job.status != status):
                status_key = f"{status}@{start.isoformat()}"
                if status_key in cursor:
                    cursor[status_key] += 1
        routed = await self._route(result, now)
        commit = await self._commit(now, result, routed, cursor)
        return TickReport(
            project=self.alias,
            at=now,
            events=commit.new_events,
            deliveries=len(commit.outbox_ids),
            outbox_ids=commit.outbox_ids,
            served=served,
        )

    # --- routing and the commit, shared by normal and fast ticks ------------------------------

    async def _route(self, result: DiffResult, now: datetime) -> RoutingResult:
        """The tick's events × today's subscriptions (stored and from the config file) and mutes."""
        subscriptions = [*(await self.store.subscriptions()), *self.config_subscriptions]
        return route(result.events, subscriptions, await self.store.mutes(now), now)

    async def _commit(
        self,
        now: datetime,
        result: DiffResult,
        routed: RoutingResult,
        cursor: dict[str, int],
        *,
        baseline: bool = False,
        degraded: str | None = None,
        degraded_kind: str | None = None,
    ) -> TickCommit:
        """One transaction: snapshots, events, outcomes, outbox rows and the cursor; counts the events."""
        commit = await self.store.commit_tick(
            TickResult(
                project=self.alias,
                at=now,
                snapshots=result.snapshots,
                events=result.events,
                outcomes=result.outcomes,
                deliveries=routed.deliveries,
                muted=routed.muted,
                cursor=cursor,
                baseline=baseline,
                degraded=degraded,
                degraded_kind=degraded_kind,
            )
        )
        for event in commit.new_events:
            EVENTS.labels(event.kind.value).inc()
        return commit

    # --- the reading ------------------------------------------------------------------------

    async def _ensure_reading(self, state: PollState | None, budget: TickBudget) -> dict[str, int]:
        """Make the client follow this GES's reading: the one kept in the cursor, else a fresh
        calibration; again when an answer contradicted it, or (undecided) every few minutes.
        Returns the cursor entries that record it.

        A calibration is charged to the tick's budget (each of its requests as a page); it is
        not begun past the deadline (it waits for the next tick, and this one lists under the
        reading it has)."""
        client = self.client
        if not isinstance(client, Calibrating):
            return {}
        cursor = state.cursor if state is not None else {}
        at = cursor.get(_CALIBRATED_AT)
        if not client.calibrated:
            kept = Reading.from_cursor(cursor)
            if kept is not None:
                client.use_reading(kept)
        due = (
            not client.calibrated
            or client.stale
            or (
                not client.reading.decided
                and (at is None or self.clock().timestamp() - at >= _RECALIBRATE_UNDECIDED.total_seconds())
            )
        )
        if due:
            if not budget.left():
                log.info("project %s: no budget left to calibrate; the next tick does", self.alias)
                return {_CALIBRATED_AT: at} if at is not None else {}
            sent = self.client.requests_sent
            try:
                await client.calibrate()
            finally:
                # Its few requests (at most CALIBRATION_REQUESTS, retries aside) come first in the
                # tick and are charged like pages: the listings get what is left.
                budget.pages += self.client.requests_sent - sent
            at = int(self.clock().timestamp())
        return {_CALIBRATED_AT: at or int(self.clock().timestamp())}

    def _reading(self) -> Reading:
        client = self.client
        return client.reading if isinstance(client, Calibrating) else ASSUMED

    def _reading_cursor(self, calibrated: dict[str, int]) -> dict[str, int]:
        client = self.client
        if not isinstance(client, Calibrating) or not client.calibrated:
            return {}
        return {**client.reading.to_cursor(), **calibrated}

    # --- one tick ---------------------------------------------------------------------------

    async def _tick(self, now: datetime, *, dry_run: bool) -> TickReport:
        state = await self.store.poll_state(self.alias)
        budget = self.budget()
        calibrated = await self._ensure_reading(state, budget)
        report, tick = await self._pass(now, state, budget, calibrated, dry_run=dry_run)
        # A baseline commits each batch of pages as it goes, so memory holds one batch (and the
        # active jobs), not the job center; the tick's budget still bounds the whole.
        while report.baseline and tick.baseline_unfinished and not budget.spent and not dry_run:
            state = await self.store.poll_state(self.alias)
            more, tick = await self._pass(
                now, state, budget, calibrated, dry_run=False, after=tick.baseline_seen, count=tick.baseline_count
            )
            report = TickReport(
                project=self.alias,
                at=now,
                events=report.events + more.events,
                baseline=True,
                deliveries=report.deliveries + more.deliveries,
                outbox_ids=report.outbox_ids + more.outbox_ids,
                missing=more.missing,
                partial=more.partial,
                degraded=more.degraded or report.degraded,
            )
        return report

    async def _pass(
        self,
        now: datetime,
        state: PollState | None,
        budget: TickBudget,
        calibrated: dict[str, int],
        *,
        dry_run: bool,
        after: frozenset[str] = frozenset(),
        count: int | None = None,
    ) -> tuple[TickReport, _TickWork]:
        """Fetch → diff → route → commit once: the whole of a cheap tick, one batch of a baseline."""
        baseline = state is None or state.baselined_at is None
        tick = _TickWork(self, now, budget)
        tick.reading = self._reading()
        if baseline:
            # A dry run commits nothing to go on from: it reads what the budget allows at once.
            batch = None if dry_run else self.baseline_batch_pages
            await tick.fetch_everything(state, batch=batch, after=after, count=count)
        else:
            assert state is not None
            await tick.fetch_cheaply(state)
        tick.correct_naive_times()
        result = await tick.diff(baseline=baseline)
        cursor = {**tick.next_cursor(result), **self._reading_cursor(calibrated)}
        partial = tick.budget.spent
        if partial:
            log.info(
                "project %s: this tick used its budget (%d pages of %d, deadline %gs); what was read is "
                "committed and the rest continues next tick",
                self.alias,
                tick.budget.pages,
                self.max_pages,
                self.tick_deadline_s,
            )
        degraded = tick.degraded()
        if degraded:
            log.warning("project %s: this tick saw only part of the job center: %s", self.alias, degraded)
        routed = await self._route(result, now)
        if tick.missing:
            log.warning(
                "project %s: %d active job(s) are no longer listed by GES (deleted?): %s",
                self.alias,
                len(tick.missing),
                ", ".join(sorted(tick.missing)[:10]),
            )
        if dry_run:
            return TickReport(
                project=self.alias,
                at=now,
                events=result.events,
                baseline=baseline,
                deliveries=len(routed.deliveries),
                missing=tuple(sorted(tick.missing)),
                partial=partial,
                degraded=degraded,
            ), tick
        await faultpoints.reached("poll.tick")
        commit = await self._commit(
            now,
            result,
            routed,
            cursor,
            # A baseline read in part is not one yet: the next tick continues it.
            baseline=baseline and not tick.baseline_unfinished,
            degraded=degraded,
            degraded_kind=tick.degraded_kind,
        )
        return TickReport(
            project=self.alias,
            at=now,
            events=commit.new_events,
            baseline=baseline,
            deliveries=len(commit.outbox_ids),
            outbox_ids=commit.outbox_ids,
            missing=tuple(sorted(tick.missing)),
            partial=partial,
            degraded=degraded,
        ), tick


class _TickWork:
    """The fetch side of one tick: what was listed, which snapshots were consulted."""

    def __init__(self, poller: Poller, now: datetime, budget: TickBudget) -> None:
        self.p = poller
        self.now = now
        self.budget = budget
        #: The baseline stopped at this offset (the budget or the batch ran out): it continues there.
        self.baseline_next: int | None = None
        #: Ticks left of listing the window whole (cursor ``order:unsorted``), and whether this
        #: tick found the searches dearer than that listing (the count starts again).
        self.unsorted_for = 0
        self.unsorted_from_now = False
        #: The ids of the baseline's last batch of pages (the next batch compares with them).
        self.baseline_seen: frozenset[str] = frozenset()
        #: The length of the list the baseline reads, as GES last gave it.
        self.baseline_count: int | None = None
        #: What the next tick's terminal window is dated from (epoch seconds; see ``_COMPLETE``).
        self.complete_at: int | None = None
        #: Everything diff will look at (duplicates allowed: diff keeps the latest state).
        self.jobs: list[Job] = []
        self.known: dict[str, Snapshot] = {}
        #: The status the store knew of every job looked up this tick (``known`` keeps the whole
        #: snapshot only while a job may go to diff: a whole read of a window holds no snapshots).
        self.status_of: dict[str, str] = {}
        self.looked_up: set[str] = set()
        self.active: dict[str, Snapshot] = {}
        self.scans: list[_Scan] = []
        self.cursor_in: dict[str, int] = {}
        self.vanished_cursor: dict[str, int] = {}
        self.missing: set[str] = set()
        #: What failed this tick (scan name → the error, as a sentence).
        self.failures: dict[str, str] = {}
        self.first_error: JobCenterError | None = None
        #: Jobs the status lists found that the store did not know at all (new to the window).
        self.window_new: set[str] = set()
        #: Whether the date window leaves running jobs out (a filter on the end time), as learnt
        #: by an earlier full read of the arrivals (cursor ``window:active``: 1 holds, 2 leaves out).
        self.window_excludes_active = False
        self.succeeded = 0
        self._lookup = asyncio.Lock()
        client = poller.client
        self.reading: Reading = client.reading if isinstance(client, Calibrating) else ASSUMED

    # --- GES ---

    @property
    def baseline_unfinished(self) -> bool:
        return self.baseline_next is not None

    async def _page(self, query: ListQuery, offset: int) -> Page:
        self.budget.take()
        return await self.p.client.list_page(query, offset, self.p.page_size)

    async def _list_all(self, query: ListQuery) -> None:
        """Every page of ``query`` (the client pages concurrently and follows a moving list), as
        far as the budget goes: past it, the pages in flight are cancelled and the rest is left."""
        if not self.budget.left():
            return
        async with aclosing(self.p.client.iter_pages(query)) as pages:
            async for page in pages:
                # Charged as they land: the client pages ahead (its concurrency), so a listing
                # may overrun the budget by the pages in flight when it ran out.
                self.budget.pages += 1
                self.jobs.extend(page.jobs)
                if not self.budget.left():
                    return

    async def _guarded(self, name: str, work: Awaitable[None]) -> bool:
        """Run one scan; a failure of this scan alone (a refused query, an unreadable answer) is
        noted and the tick degrades instead of ending. GES down (no answer, 5xx after the
        client's retries) or credentials refused end the tick: the other scans would fail too,
        and the next tick redoes everything at no loss. So does an answer past the byte cap or
        nested too deep (:class:`UnusableAnswerError`): a GES sending those is not asked more
        this tick, or every scan (three of them concurrently) would hold its cap's worth."""
        try:
            await work
        except (AuthError, TransportError, UnusableAnswerError):
            raise
        except ApiError as exc:
            if exc.retryable:
                raise
            self.first_error = self.first_error or exc
            self.failures[name] = describe_error(exc)
            log.warning("project %s: the %s scan failed: %s", self.p.alias, name, self.failures[name])
            return False
        except JobCenterError as exc:
            self.first_error = self.first_error or exc
            self.failures[name] = describe_error(exc)
            log.warning("project %s: the %s scan failed: %s", self.p.alias, name, self.failures[name])
            return False
        self.succeeded += 1
        return True

    def degraded(self) -> str | None:
        """A sentence naming the scans that failed, or ``None``; raises the failure when every
        scan failed (the tick then saw nothing, and is a failed tick)."""
        if not self.failures:
            return None
        if not self.succeeded and self.first_error is not None:
            raise self.first_error
        text = "; ".join(f"{name}: {error}" for name, error in self.failures.items())
        return f"{len(self.failures)} scan(s) failed ({text})"

    @property
    def degraded_kind(self) -> str | None:
        """What the first failed scan ran into (``last_error_kind``), if one failed."""
        return error_kind(self.first_error).value if self.first_error is not None and self.failures else None

    def _keep_vanished(self, job_ids: Iterable[str]) -> None:
        """The lookup back-off of ``job_ids`` as it was (they were not looked for this tick)."""
        for job_id in job_ids:
            for suffix in (":misses", ":next"):
                key = f"{_VANISHED}{job_id}{suffix}"
                if key in self.cursor_in:
                    self.vanished_cursor[key] = self.cursor_in[key]

    async def _search(self, query: ListQuery, first: Page, on_page: Callable[[Sequence[Job]], Awaitable[bool]]) -> bool:
        """The pages after ``first``, from both ends alternately, until ``on_page`` says enough.
        Returns whether every page was read."""
        if first.job_count is None:
            # No count to aim at (or none to trust): walk on until an empty page.
            offset = first.size
            seen = set(first.row_ids)
            while first.size:
                page = await self._page(query, offset)
                if not page.size or await on_page(page.jobs):
                    return not page.size
                fresh = set(page.row_ids) - seen
                if not fresh:
                    # A GES that ignores offset must not keep us here; the reading is suspect.
                    self._distrust()
                    return True
                seen |= fresh
                offset += page.size
            return True
        step = first.limit
        if 0 < first.size < min(step, first.job_count):
            # GES caps ``limit`` below what we asked: page by what it gives, or skip jobs.
            step = first.size
        for offset in _page_offsets(first.job_count, step):
            page = await self._page(query, offset)
            if await on_page(page.jobs):
                return False
        return True

    def _distrust(self) -> None:
        client = self.p.client
        if isinstance(client, Calibrating):
            client.stale = True

    # --- store ---

    async def _snapshots(self, ids: Iterable[str]) -> None:
        # Scans run concurrently: one must not read ``known`` while another is filling it.
        async with self._lookup:
            wanted = [i for i in dict.fromkeys(ids) if i not in self.looked_up]
            # However many ids: the store splits them to stay under the database's parameter cap.
            found = await self.p.store.snapshots(self.p.alias, wanted)
            self.known.update(found)
            self.status_of.update((i, snap.job.status) for i, snap in found.items())
            self.looked_up.update(wanted)

    def _forget(self, jobs: Sequence[Job], kept: int) -> None:
        """Drop the snapshots of the page's jobs that do not go to diff (``self.jobs[kept:]`` are
        those that do): memory holds a page of them, not a window; their status stays known."""
        going = {j.job_id for j in self.jobs[kept:]}
        for job in jobs:
            if job.job_id not in going and job.job_id not in self.active:
                self.known.pop(job.job_id, None)

    # --- strategies ---

    async def fetch_everything(
        self,
        state: PollState | None,
        *,
        batch: int | None = None,
        after: frozenset[str] = frozenset(),
        count: int | None = None,
    ) -> None:
        """The baseline: every job, from where an earlier cut tick (or batch) stopped, a few pages
        at a time, at most ``batch`` pages (then ``baseline_next`` says where the next batch goes
        on). ``after``: the ids of the previous batch's last pages (a GES ignoring offsets gives
        them again: nothing new, the end). ``count``: the list's length as GES last gave it (no
        page is asked for past it but one, to see the end)."""
        self.cursor_in = dict(state.cursor) if state is not None else {}
        self.active = await self.p.store.active_snapshots(self.p.alias)
        # The window of the first cheap tick reaches back to when the baseline began.
        self.complete_at = self.cursor_in.get(_COMPLETE, int(self.now.timestamp()))
        query = ListQuery()
        offset = self.cursor_in.get(_BASELINE, 0)
        step = self.p.page_size
        # Only the last batch of pages is remembered: enough to see offsets ignored, and flat.
        seen: set[str] = set(after)
        read = 0
        step_known = False
        while True:
            if batch is not None and read >= batch:
                self.baseline_next = offset
                return
            # One page first (here or where an earlier tick stopped): it tells the page GES gives.
            wanted = self.p.concurrency if step_known else 1
            if count is not None:
                wanted = max(1, min(wanted, -(-(count - offset) // step)))
            granted = self.budget.reserve(wanted if batch is None else min(wanted, batch - read))
            if not granted:
                self.baseline_next = offset
                return
            read += granted
            offsets = [offset + i * step for i in range(granted)]
            pages = await asyncio.gather(*(self.p.client.list_page(query, at, self.p.page_size) for at in offsets))
            fresh = False
            batch_ids: set[str] = set()
            for page in pages:
                self.jobs.extend(page.jobs)
                fresh = fresh or any(i not in seen and i not in batch_ids for i in page.row_ids)
                batch_ids.update(page.row_ids)
            seen = batch_ids
            self.baseline_seen = frozenset(batch_ids)
            counts = [page.job_count for page in pages if page.job_count is not None]
            if counts:
                count = self.baseline_count = max(counts)
            first = pages[0]
            if not step_known:
                # The limit the client really sends (a cap the calibration found), then what GES
                # gives when the count says there is more.
                step = min(step, first.limit)
                if 0 < first.size < step and (first.job_count or 0) > offset + first.size:
                    # GES caps ``limit`` below what we asked: page by what it gives, or skip jobs.
                    step = first.size
            step_known = True
            if any(page.size < step for page in pages) or not fresh:
                # The end of the list (or a GES ignoring offset: nothing new).
                return
            offset += granted * step

    async def fetch_cheaply(self, state: PollState) -> None:
        self.cursor_in = dict(state.cursor)
        self.window_excludes_active = self.cursor_in.get(_WINDOW_ACTIVE) == 2
        self.active = await self.p.store.active_snapshots(self.p.alias)
        since = min(self.now, state.last_success_at or self.now)
        if _COMPLETE in self.cursor_in:
            # Not past the last tick that read everything (a cut tick commits too).
            since = min(since, datetime.fromtimestamp(self.cursor_in[_COMPLETE], UTC))
        start = since.astimezone(UTC).date() - timedelta(days=1)
        plan = plan_queries(self.reading, start)
        window = self.cursor_in.get(f"{_ANY}@{start.isoformat()}")
        if any(p.kind == "arrivals" and p.query.start_date == start for p in plan) and window is not None:
            self.unsorted_for = self.cursor_in.get(_UNSORTED, 0)
            if -(-window // self.p.page_size) >= self.budget.max_pages - self.budget.pages:
                # Grown past what one tick may read: back to the scans (the budget bounds them).
                self.unsorted_for = 0
        # Listing the window whole shows every job begun in it, running ones too: the active lists
        # are asked only for jobs begun before it, or where dated listings leave running jobs out.
        skip_active = (
            self.unsorted_for > 0
            and not self.window_excludes_active
            and all((s.job.begin_time or s.first_seen).astimezone(UTC).date() >= start for s in self.active.values())
        )
        # In the direction jobs move: a job changing state mid-tick is seen twice, never missed.
        for planned in plan:
            if planned.kind == "active" and not skip_active:
                await self._guarded(planned.name, self._list_all(planned.query))
        for planned in plan:
            if planned.kind == "active":
                continue
            key = f"{planned.status}@{planned.query.start_date.isoformat() if planned.query.start_date else 'all'}"
            head_first = bool(self.cursor_in.get(f"{_HEAD}{planned.status}"))
            self.scans.append(
                _Scan(
                    status=planned.status,
                    key=key,
                    remembered=self.cursor_in.get(key),
                    head_first=head_first,
                    query_start=planned.query.start_date,
                )
            )
        queries = {p.status: p.query for p in plan}

        def planned_query(scan: _Scan) -> ListQuery:
            return queries[scan.status]

        if self.unsorted_for > 0:
            # The order is no order (see _settle_pending): list the window whole, once, for all.
            await self._list_window(start, self.scans)
            self._finish_cheaply(since)
            if not self.budget.spent:
                await self._follow_vanished()
            return

        status_scans = [scan for scan in self.scans if scan.status != _ANY]
        await asyncio.gather(*(self._scan(scan, planned_query(scan)) for scan in status_scans))
        for scan in self.scans:
            if scan.status == _ANY:
                # After the status lists: what they found new in the same window (or a narrower
                # one) is new here too, so the arrivals need not read back for it.
                scan.new_ids |= self.window_new
                await self._scan(scan, planned_query(scan))
        await self._settle_pending(start)
        self._finish_cheaply(since)
        if self.budget.spent:
            # An active list read in part makes every unread active job look vanished: leave
            # them for a tick that reads everything, back-off included.
            return
        await self._follow_vanished()

    def _finish_cheaply(self, since: datetime) -> None:
        # Every listing read to its end: the next window may start from this tick. A cut or a
        # failed scan leaves it where it was (the unread rest is still in the window next tick).
        self.complete_at = int((since if self.budget.spent or self.failures else self.now).timestamp())
        if self.budget.spent:
            self.vanished_cursor.update((k, v) for k, v in self.cursor_in.items() if k.startswith(_VANISHED))

    async def _scan(self, scan: _Scan, query: ListQuery) -> None:
        name = "new jobs" if scan.status == _ANY else f"status={scan.status}"
        if not await self._guarded(name, self._scan_terminal(scan, query)):
            scan.failed = True

    async def _scan_terminal(self, scan: _Scan, query: ListQuery) -> None:
        # Out of budget: next_cursor keeps what this scan's pages proved, and no more. A cut scan
        # is no failed one: it read right as far as it went, and goes on next tick.
        with contextlib.suppress(_Spent):
            await self._scan_terminal_pages(scan, query)

    async def _scan_terminal_pages(self, scan: _Scan, query: ListQuery) -> None:
        if scan.remembered is not None and not scan.head_first and await self._probe_tail(scan, query):
            return
        if scan.remembered is None and self.cursor_in.get(f"{_WHOLE}{scan.key}:anchor") is not None:
            # A pass cut short last tick: go on where it stopped (page 1 would be read for nothing).
            scan.full = True
            await self._full_pass(scan, query, None)
            return
        first = await self._page(query, 0)
        scan.unread = False
        await self._note(scan, first.jobs)
        count = first.job_count
        if count is None:
            # No count to trust: read it all; what was seen is then the memory the next tick's
            # probe starts from (see _probe_tail).
            scan.counted = False
        elif scan.remembered is not None and count == scan.remembered:
            scan.unchanged = True
            return
        scan.full = count is None or scan.remembered is None or count < scan.remembered
        scan.latest_count = count
        if scan.full:
            # A whole read, resumable across ticks (the budget may cut it): with no count to
            # trust too, the list's end is its first short page.
            await self._full_pass(scan, query, first)
            return
        assert count is not None  # (none to trust: read whole, above)
        need = scan.need = 0 if scan.remembered is None else count - scan.remembered
        if not scan.full and len(scan.new_ids) >= need:
            scan.found_at = "head"
            return

        async def on_page(jobs: Sequence[Job]) -> bool:
            await self._note(scan, jobs)
            return not scan.full and len(scan.new_ids) >= need

        scan.count_seen = count
        if len(scan.new_ids) < need:
            # Weighed by the tick against one full listing first (_settle_pending).
            scan.pending = (query, first)

    async def _run_search(self, scan: _Scan) -> None:
        """The deferred search of ``scan``: the pages after page 1 until its new jobs are found."""
        assert scan.pending is not None
        assert scan.remembered is not None
        query, first = scan.pending
        scan.pending = None
        assert first.job_count is not None
        need = first.job_count - scan.remembered

        async def on_page(jobs: Sequence[Job]) -> bool:
            await self._note(scan, jobs)
            return len(scan.new_ids) >= need

        with contextlib.suppress(_Spent):
            scan.exhausted = await self._search(query, first, on_page)

    async def _settle_pending(self, start: date) -> None:
        """Run the deferred searches, or — when together they could read more pages than one
        listing of the whole window (every status at once, as a naive poller lists it) — that
        listing instead, which settles every scan: a bad order never costs more than naive."""
        pending = [s for s in self.scans if s.pending is not None and not s.failed]
        if not pending:
            return
        step = self.p.page_size
        searches = sum(-(-(s.pending[1].job_count or 0) // step) - 1 for s in pending if s.pending is not None)
        window = sum(s.count_seen or 0 for s in self.scans if s.status != _ANY) + len(self.active)
        arrivals = [s for s in self.scans if s.status == _ANY and s.query_start == start]
        if arrivals and arrivals[0].count_seen is not None:
            window = arrivals[0].count_seen
        whole = -(-window // step)
        # Only a listing the budget can finish settles anything (a cut one starts again at page 1).
        if searches <= whole or whole > self.budget.max_pages - self.budget.pages:
            for scan in sorted(pending, key=lambda s: s.status == _ANY):
                if scan.status == _ANY:
                    # What the status searches found new is new here too (as before its probe).
                    scan.new_ids |= self.window_new
                    assert scan.pending is not None
                    assert scan.remembered is not None
                    if len(scan.new_ids) >= (scan.pending[1].job_count or 0) - scan.remembered:
                        scan.pending = None
                        continue
                name = "new jobs" if scan.status == _ANY else f"status={scan.status}"
                if not await self._guarded(name, self._run_search(scan)):
                    scan.failed = True
            return
        log.info(
            "project %s: finding this tick's jobs could read %d pages, more than listing the window whole "
            "(%d jobs); listing it whole for the next %d ticks",
            self.p.alias,
            searches,
            window,
            _UNSORTED_TICKS,
        )
        self.unsorted_from_now = True
        await self._list_window(start, pending)

    async def _list_window(self, start: date, scans: Sequence[_Scan]) -> None:
        """Every job of the window, unfiltered, a few pages at a time: each of ``scans`` takes
        its status from it and is then read whole (its memory becomes what the store knows)."""
        for scan in scans:
            scan.pending = None
            scan.unread = False
            scan.full = True
        by_status: dict[str, list[_Scan]] = {}
        for scan in scans:
            by_status.setdefault(scan.status, []).append(scan)
        query = ListQuery(start_date=start)

        async def read() -> None:
            offset, count = 0, None
            step = self.p.page_size
            while True:
                wanted = self.p.concurrency if offset else 1
                if count is not None:
                    wanted = max(1, min(wanted, -(-(count - offset) // step)))
                granted = self.budget.reserve(wanted)
                if not granted:
                    return
                offsets = [offset + i * step for i in range(granted)]
                pages = await asyncio.gather(*(self.p.client.list_page(query, at, step) for at in offsets))
                for page in pages:
                    if page.job_count is not None:
                        count = page.job_count
                    groups: dict[str, list[Job]] = {}
                    for job in page.jobs:
                        if job.job_id in self.active:
                            # Still listed: not vanished (the active lists may not have been asked).
                            self.jobs.append(job)
                        groups.setdefault(job.status, []).append(job)
                    for status, jobs in groups.items():
                        for scan in by_status.get(status, ()):
                            await self._note(scan, jobs)
                    for scan in by_status.get(_ANY, ()):
                        await self._note(scan, page.jobs)
                offset += granted * step
                # The end: a short page, or (a count to trust) every row it counts was read.
                if any(page.size < step for page in pages) or (count is not None and offset >= count):
                    for scan in scans:
                        scan.exhausted = True
                    return

        if not await self._guarded("listing of the whole window", read()):
            for scan in scans:
                scan.failed = True

    async def _full_pass(self, scan: _Scan, query: ListQuery, first: Page | None) -> None:
        """Read a terminal listing whole, in offset order, as far as the budget goes; a pass cut
        short goes on next tick where it stopped, so a window larger than one tick's budget is
        still read whole once (and remembered) rather than started afresh every tick.

        Resuming reads from one before where it stopped, and looks for the last job it read
        (the anchor): jobs inserted at the head meanwhile (a descending order) move it down the
        page, and only the jobs after it are new to the pass; an anchor not found (jobs deleted)
        starts the pass again. The count kept when the pass ends never exceeds GES's count.
        ``first`` is page 1 when it was read (``None``: resuming, page 1 is read only if the pass
        has to start again)."""
        step = self.p.page_size

        def paged_by(page: Page, at: int = 0) -> None:
            nonlocal step
            step = min(step, page.limit)
            if 0 < page.size < min(step, (page.job_count or 0) - at):
                step = page.size  # GES caps ``limit``: page by what it gives

        if first is not None:
            paged_by(first)
        prefix = f"{_WHOLE}{scan.key}:"
        offset = self.cursor_in.get(prefix + "offset")
        anchor = self.cursor_in.get(prefix + "anchor")
        resume = offset is not None and anchor is not None and offset > 0
        scan.pass_known = self.cursor_in.get(prefix + "known", 0) if resume else 0
        scan.pass_offset = offset if resume else 0
        scan.pass_anchor = anchor if resume else None
        scan.pass_head = self.cursor_in.get(prefix + "head") if resume else None
        while True:
            at = scan.pass_offset or 0
            # Offsets and the anchor follow the list's rows (``row_ids``), which are the jobs
            # unless the status is filtered here (a GES ignoring the filter).
            if not resume:
                if first is None:
                    first = await self._page(query, 0)
                    scan.unread = False
                    await self._note(scan, first.jobs)
                    paged_by(first)
                    if first.job_count is None:
                        scan.counted = False
                    scan.latest_count = first.job_count
                rows, fresh = list(first.row_ids), list(first.row_ids)
                scan.pass_head = _anchor(first.row_ids[0]) if first.row_ids else None
            else:
                assert scan.pass_anchor is not None
                at = (scan.pass_offset or 0) - 1
                page = await self._page(query, at)
                scan.unread = False
                if page.job_count is not None:
                    scan.latest_count = page.job_count
                else:
                    # No count to keep at the end (the reading changed?): nothing to remember.
                    scan.counted = False
                await self._note(scan, page.jobs)
                paged_by(page, at)
                rows = list(page.row_ids)
                hashes = [_anchor(i) for i in rows]
                if scan.pass_anchor not in hashes:
                    log.info("project %s: listing %s moved under a pass; reading it again", self.p.alias, scan.key)
                    scan.pass_known, scan.pass_offset, scan.pass_anchor = 0, 0, None
                    scan.pass_ids.clear()
                    resume = False
                    continue
                fresh = rows[hashes.index(scan.pass_anchor) + 1 :]
            scan.pass_ids.update(fresh)
            scan.pass_offset = at + len(rows)
            if fresh:
                scan.pass_anchor = _anchor(fresh[-1])
            if len(rows) < step or not fresh:
                if first is None:
                    # A pass resumed without page 1: read it now, for the jobs ahead of the pass.
                    first = await self._page(query, 0)
                    await self._note(scan, first.jobs)
                # Jobs inserted ahead of the pass's first job while it ran (a descending order
                # puts every new job there) are on this tick's page 1, before that job: read this
                # tick, so known after it, and not counted by the pass.
                heads = [_anchor(i) for i in first.row_ids]
                if scan.pass_head in heads:
                    scan.pass_ids.update(first.row_ids[: heads.index(scan.pass_head)])
                scan.pass_done = True
                # Read whole: what was seen is the memory, even without a count to trust (the
                # next tick's probe starts from it, see _probe_tail).
                scan.counted = True
                return
            resume = True

    async def _probe_tail(self, scan: _Scan, query: ListQuery) -> bool:
        """The page just past the jobs remembered; True when it settles the scan (count
        unchanged, or grown by exactly the jobs it holds), False to go on from page 1."""
        assert scan.remembered is not None
        probe = await self._page(query, scan.remembered)
        scan.unread = False
        count = probe.job_count
        if count is None:
            # No count to trust (a page's length, the job center's total): the length of the list
            # is what was remembered plus the rows from there on, read to an empty page.
            count = await self._length_from(scan, query, probe)
        scan.count_seen = count
        if count is None or count < scan.remembered:
            return False
        if count == scan.remembered:
            scan.unchanged = True
            return True
        await self._note(scan, probe.jobs)
        need = scan.need = count - scan.remembered
        offset = scan.remembered
        step = probe.limit
        paged = self.reading.offset in ("page0", "page1")
        for _ in range(_TAIL_PAGES):
            # Walk back from the end; at the start of the list, page 1 and the search take over.
            if len(scan.new_ids) >= need or offset <= step:
                break
            # A GES counting pages answers whole pages only: step back to the page boundary,
            # or the rows between it and the probe would be skipped.
            offset = (offset - 1) // step * step if paged else offset - step
            page = await self._page(query, offset)
            await self._note(scan, page.jobs)
        if len(scan.new_ids) >= need:
            scan.found_at = "tail"
            return True
        return False

    async def _length_from(self, scan: _Scan, query: ListQuery, probe: Page) -> int | None:
        """``remembered`` + the rows from ``probe`` (at offset ``remembered``) to an empty page,
        noting the jobs of the pages after it; ``None`` when a page brings nothing new (a GES
        whose offsets do not work as its reading says: page 1 and the full read take over)."""
        assert scan.remembered is not None
        rows = probe.size
        seen = set(probe.row_ids)
        page = probe
        while page.size:
            page = await self._page(query, scan.remembered + rows)
            fresh = set(page.row_ids) - seen
            if page.size and not fresh:
                self._distrust()
                return None
            seen |= fresh
            rows += page.size
            await self._note(scan, page.jobs)
        return scan.remembered + rows

    async def _note(self, scan: _Scan, jobs: Sequence[Job]) -> None:
        """Take in a terminal page: which of its jobs the store does not know in that status yet.
        Only those go to diff (the others would be a last_seen update: a write per job)."""
        await self._snapshots(j.job_id for j in jobs)
        kept = len(self.jobs)
        try:
            self._note_known(scan, jobs)
        finally:
            self._forget(jobs, kept)

    def _note_known(self, scan: _Scan, jobs: Sequence[Job]) -> None:
        # By the status the store knew (``status_of``): a snapshot may have been let go of.
        if scan.status == _ANY:
            for job in jobs:
                scan.seen.add(job.job_id)
                scan.saw_active = scan.saw_active or job.is_active
                before = self.status_of.get(job.job_id)
                if before is None:
                    scan.new_ids.add(job.job_id)
                    self.jobs.append(job)
                elif before != job.status:
                    self.jobs.append(job)
                    if self.window_excludes_active and before in ACTIVE_STATUSES:
                        # A date filter on the end time: a job enters the window when it ends.
                        scan.new_ids.add(job.job_id)
            return
        for job in jobs:
            if job.status != scan.status:
                # Not what was asked for: diff judges it, but it says nothing about the count.
                self.jobs.append(job)
                continue
            scan.seen.add(job.job_id)
            before = self.status_of.get(job.job_id)
            if before is None or before != scan.status:
                scan.new_ids.add(job.job_id)
                self.jobs.append(job)
            if before is None:
                self.window_new.add(job.job_id)

    async def _follow_vanished(self) -> None:
        listed = {j.job_id for j in self.jobs}
        due: list[Snapshot] = []
        for job_id, snap in self.active.items():
            if job_id in listed:
                continue
            # A job deleted from GES would cost a scan every tick: back off between lookups.
            next_try = self.cursor_in.get(f"{_VANISHED}{job_id}:next")
            if next_try is not None and self.now.timestamp() < next_try:
                self.missing.add(job_id)
                self._keep_vanished((job_id,))
                continue
            due.append(snap)
        by_graph: dict[str | None, list[Snapshot]] = {}
        for snap in due:
            by_graph.setdefault(snap.job.graph, []).append(snap)
        for graph, snaps in by_graph.items():
            wanted = {s.job.job_id for s in snaps}
            start = min((s.job.begin_time or s.first_seen).astimezone(UTC).date() for s in snaps) - timedelta(days=1)
            query = ListQuery(graph_name=graph, start_date=start)

            async def take(jobs: Sequence[Job], wanted: set[str] = wanted) -> bool:
                # Only the jobs looked for go to diff: the rest of the graph's history is the
                # terminal lists' business.
                for job in jobs:
                    if job.job_id in wanted:
                        wanted.discard(job.job_id)
                        self.jobs.append(job)
                return not wanted

            async def look(
                query: ListQuery = query,
                take: Callable[[Sequence[Job]], Awaitable[bool]] = take,
                wanted: set[str] = wanted,
            ) -> None:
                first = await self._page(query, 0)
                if not await take(first.jobs):
                    await self._search(query, first, take)
                if wanted and query.start_date is not None:
                    # Not in its window: a date filter on the end time leaves a running job out.
                    # The graph's whole list, then.
                    await look(replace(query, start_date=None))

            try:
                looked = await self._guarded(f"lookup of graph {graph}", look())
            except _Spent:
                looked = False
            if not looked:
                # Not looked for to the end (out of budget, or the lookup failed): not missing,
                # no miss counted, the back-off as it was; the next tick tries again.
                self._keep_vanished(wanted)
                continue
            for job_id in wanted:
                self.missing.add(job_id)
                misses = self.cursor_in.get(f"{_VANISHED}{job_id}:misses", 0) + 1
                wait = min(timedelta(minutes=2**misses), _MAX_BACKOFF)
                self.vanished_cursor[f"{_VANISHED}{job_id}:misses"] = misses
                self.vanished_cursor[f"{_VANISHED}{job_id}:next"] = int((self.now + wait).timestamp())

    # --- naive times ---

    def correct_naive_times(self) -> None:
        """Naive times that put a job in the future are written east of UTC: learn by how much
        (the client reads them so from now on) and correct this tick's jobs at once."""
        client = self.p.client
        if self.reading.times != "naive" or not isinstance(client, Calibrating):
            return
        times = [t for j in self.jobs for t in (j.begin_time, j.end_time) if t is not None]
        extra = naive_offset_hint(times, self.now)
        if not extra:
            return
        client.learn_naive_offset(client.reading.naive_offset_min + extra)
        shift = timedelta(minutes=extra)
        self.jobs = [
            replace(
                j,
                begin_time=j.begin_time - shift if j.begin_time else None,
                end_time=j.end_time - shift if j.end_time else None,
            )
            for j in self.jobs
        ]

    # --- diff and the next cursor ---

    async def diff(self, *, baseline: bool) -> DiffResult:
        await self._snapshots(j.job_id for j in self.jobs)
        # A job whose snapshot a page let go of and that another listing sends to diff after all.
        again = [j.job_id for j in self.jobs if j.job_id in self.status_of and j.job_id not in self.known]
        if again:
            self.known.update(await self.p.store.snapshots(self.p.alias, list(dict.fromkeys(again))))
        previous = {**self.active, **self.known}
        keys = sorted({outcome_key(j) for j in self.jobs if j.is_terminal})
        outcomes = await self.p.store.outcomes(self.p.alias, keys)
        backfill_since = self.now - self.p.backfill if self.p.backfill > timedelta(0) else None
        return diff(
            self.p.alias,
            previous,
            self.jobs,
            outcomes,
            self.now,
            stuck_after=self.p.stuck_after,
            baseline=baseline,
            backfill_since=backfill_since,
        )

    def next_cursor(self, result: DiffResult) -> dict[str, int]:
        """Per terminal listing, how many of its jobs the store knows in that status after this
        tick — never more (an over-count would hide new jobs), ideally exactly."""
        after = {s.job.job_id: s.job.status for s in result.snapshots}

        def known_as(ids: Collection[str], status: str) -> int:
            if status == _ANY:
                return sum(1 for i in ids if after.get(i, self._status_before(i)) is not None)
            return sum(1 for i in ids if after.get(i, self._status_before(i)) == status)

        cursor: dict[str, int] = dict(self.vanished_cursor)
        if self.baseline_next is not None:
            cursor[_BASELINE] = self.baseline_next
        if self.complete_at is not None:
            cursor[_COMPLETE] = self.complete_at
        if _WINDOW_ACTIVE in self.cursor_in:
            cursor[_WINDOW_ACTIVE] = self.cursor_in[_WINDOW_ACTIVE]
        if self.unsorted_from_now:
            cursor[_UNSORTED] = _UNSORTED_TICKS
        elif self.unsorted_for > 1:
            cursor[_UNSORTED] = self.unsorted_for - 1
        for scan in self.scans:
            if scan.status == _ANY and scan.query_start is not None and not scan.failed:
                if scan.saw_active:
                    cursor[_WINDOW_ACTIVE] = 1
                elif (scan.exhausted or scan.pass_done) and any(
                    s.job.begin_time is not None
                    and s.job.begin_time.astimezone(UTC).date() >= scan.query_start + timedelta(days=1)
                    for s in self.active.values()
                ):
                    # Read whole, and no running job in it though some began well inside it.
                    cursor[_WINDOW_ACTIVE] = 2
            if scan.unread or scan.failed:
                # Not read at all this tick, or read wrong: what was known stays known, no more.
                for key, value in self.cursor_in.items():
                    if key in (scan.key, f"{_HEAD}{scan.status}") or key.startswith(f"{_WHOLE}{scan.key}:"):
                        cursor[key] = value
                continue
            # A head-first scan cut short proved nothing about where new jobs are: keep reading
            # page 1 first.
            undecided = scan.head_first and scan.found_at is None and (scan.unchanged or self.budget.spent)
            if scan.found_at == "head" or undecided:
                cursor[f"{_HEAD}{scan.status}"] = 1
            if scan.pass_offset is not None:
                known = scan.pass_known + known_as(scan.pass_ids, scan.status)
                if scan.pass_done:
                    cursor[scan.key] = min(known, scan.latest_count if scan.latest_count is not None else known)
                elif scan.pass_anchor is not None:
                    prefix = f"{_WHOLE}{scan.key}:"
                    cursor[prefix + "offset"] = scan.pass_offset
                    cursor[prefix + "known"] = known
                    cursor[prefix + "anchor"] = scan.pass_anchor
                    if scan.pass_head is not None:
                        cursor[prefix + "head"] = scan.pass_head
                continue
            if not scan.counted:
                continue
            if scan.full:
                cursor[scan.key] = known_as(scan.seen, scan.status)
                continue
            assert scan.remembered is not None
            if scan.exhausted:
                # Everything was read: count what is known, exactly.
                cursor[scan.key] = known_as(scan.seen, scan.status)
            elif scan.unchanged:
                # Same count; a job on page 1 that is new anyway means one was deleted: keep the
                # memory rather than count the newcomer twice.
                cursor[scan.key] = scan.remembered
            elif self.budget.spent and scan.found_at is None and len(scan.new_ids) < scan.need:
                # A search cut short of what the count says is new: the memory may be too low (a
                # job deleted, a pass that ended while jobs moved), and then no search finds
                # enough and each tick would read the same pages again. Forget it: the next
                # ticks read the listing whole, as a pass, and remember exactly.
                continue
            else:
                cursor[scan.key] = scan.remembered + known_as(scan.new_ids, scan.status)
        return cursor

    def _status_before(self, job_id: str) -> str | None:
        return self.status_of.get(job_id)


async def run_tick(poller: Poller) -> TickReport | None:
    """Run one scheduled poll (:meth:`Poller.poll`: a tick, or its scans deferred to the fast
    lane) and never raise (except cancellation): a failure is logged with the GES error text and
    recorded with ``Store.record_poll_error``; the next interval retries."""
    try:
        return await poller.poll()
    except Exception as exc:
        text = describe_error(exc)
        POLL_TICKS.labels(poller.alias, "error").inc()
        log.error("poll of project %s failed: %s", poller.alias, text)
        try:
            await poller.store.record_poll_error(poller.alias, poller.clock(), text, kind=error_kind(exc))
        except Exception as store_exc:
            log.error("could not record the poll error of %s: %s", poller.alias, describe_error(store_exc))
        return None
