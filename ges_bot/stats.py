"""Job statistics over a time range: counts per local day and outcome, failure rate per graph,
duration percentiles per job type, and the figures of a short summary.

Owns the arithmetic behind ``/gesjobs stats``, digests and the Home tab's chart: which outcome a
status counts as, which local day a job belongs to (the day its ``begin_time`` falls on in the
asker's zone, so DST days and zones east of UTC count as people read their calendar), the
window a ``TimeRange`` means for a chart (whole local days), the previous period a change is
measured against, and how many graphs a chart shows before pooling the rest as "others".

Pure: rows, a zone and instants in; frozen values out (``to_json`` gives the numbers a chart is
drawn from, for goldens and alt text). No clock, store, Slack or plotting (``ges_bot.charts``
draws).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, TypeAlias
from zoneinfo import ZoneInfo

from ges_bot.domain import Job, JobStatus

__all__ = [
    "OUTCOMES",
    "TOP_N",
    "DayCounts",
    "DurationRow",
    "Flaky",
    "GraphRate",
    "Outcome",
    "SlowJob",
    "Stats",
    "aggregate",
    "chart_window",
    "day_of",
    "flaky_graphs",
    "outcome_of",
    "percentile",
]

Outcome: TypeAlias = Literal["success", "partial", "failed", "running"]
#: Chart order, bottom of the stack first: the good news at the base, failures on top where the eye lands.
OUTCOMES: tuple[Outcome, ...] = ("success", "partial", "failed", "running")
#: Graphs (or job types) a chart shows by name; the rest are pooled as "others" so that 100
#: graphs stay legible at Slack's preview width.
TOP_N = 10
#: The job name of a graph import (the "slowest import" of a summary).
IMPORT_JOB = "ImportGraph"

_OUTCOME_OF: dict[str, Outcome] = {
    JobStatus.SUCCESS: "success",
    JobStatus.PARTIALLY_FAILED: "partial",
    JobStatus.FAILED: "failed",
    JobStatus.RUNNING: "running",
    JobStatus.PENDING: "running",
}


def outcome_of(status: str) -> Outcome | None:
    """The chart outcome of a job status; ``None`` for a status GES invented later (counted as other)."""
    return _OUTCOME_OF.get(status)


def job_instant(job: Job) -> datetime | None:
    """When a job is placed on the calendar: when it began (or ended, if its start is unknown),
    the same instant the store filters snapshots by."""
    return job.begin_time if job.begin_time is not None else job.end_time


def day_of(instant: datetime, zone: ZoneInfo) -> date:
    """The local calendar day of ``instant`` in ``zone``."""
    return instant.astimezone(zone).date()


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def chart_window(start: datetime, end: datetime, now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """``[start, end)`` widened to whole local days for a per-day chart, ending no later than the
    end of today: ``last 7d`` asked at 14:00 becomes the 7 local days up to and including today
    (not 8 bars with a partial first one)."""
    first = day_of(start, zone)
    span = end - start
    if _midnight(first, zone) < start and span >= timedelta(days=2) and span % timedelta(days=1) == timedelta(0):
        # A span of whole days ending now: the N days ending today.
        first += timedelta(days=1)
    last_instant = min(end, _midnight(day_of(now, zone) + timedelta(days=1), zone)) - timedelta(microseconds=1)
    last = max(first, day_of(last_instant, zone))
    return _midnight(first, zone), _midnight(last + timedelta(days=1), zone)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) by the nearest-rank method: always one of the values, so a
    p95 of 20 durations is a real job's duration. Raises on an empty sequence."""
    if not values:
        raise ValueError("percentile of nothing")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class DayCounts:
    """Jobs that began on one local day, by outcome."""

    day: date
    success: int = 0
    partial: int = 0
    failed: int = 0
    running: int = 0

    def get(self, outcome: Outcome) -> int:
        return int(getattr(self, outcome))

    @property
    def total(self) -> int:
        return self.success + self.partial + self.failed + self.running


@dataclass(frozen=True, slots=True)
class GraphRate:
    """A graph's finished jobs and how many failed (fully or partially). ``graphs`` > 1 marks the
    pooled "others" row."""

    graph: str
    finished: int
    failed: int
    partial: int
    graphs: int = 1

    @property
    def failures(self) -> int:
        return self.failed + self.partial

    @property
    def rate(self) -> float:
        return self.failures / self.finished if self.finished else 0.0


@dataclass(frozen=True, slots=True)
class DurationRow:
    """Duration percentiles (seconds) of finished jobs of one job type (or the pooled others)."""

    name: str
    count: int
    p50_s: float
    p95_s: float
    groups: int = 1


@dataclass(frozen=True, slots=True)
class SlowJob:
    project: str
    job_id: str
    graph: str
    job_name: str
    seconds: float


@dataclass(frozen=True, slots=True)
class Stats:
    """Everything a stats chart and its summary say about ``[start, end)`` in ``zone``."""

    zone: str
    start: datetime
    end: datetime
    days: tuple[DayCounts, ...]
    graphs: tuple[GraphRate, ...]
    #: Every graph that ran, before pooling (for "the graph that failed most").
    graph_count: int
    durations: tuple[DurationRow, ...]
    other: int
    previous_finished: int
    previous_failures: int
    slowest_import: SlowJob | None
    most_failed: GraphRate | None
    #: Per outcome over the whole range.
    totals: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.totals.values()) + self.other

    @property
    def finished(self) -> int:
        return self.totals.get("success", 0) + self.totals.get("partial", 0) + self.totals.get("failed", 0)

    @property
    def failures(self) -> int:
        return self.totals.get("partial", 0) + self.totals.get("failed", 0)

    @property
    def failure_rate(self) -> float | None:
        """Failed or partially failed, of finished jobs; ``None`` when nothing finished."""
        return self.failures / self.finished if self.finished else None

    @property
    def previous_failure_rate(self) -> float | None:
        return self.previous_failures / self.previous_finished if self.previous_finished else None

    def to_json(self) -> dict[str, Any]:
        """The numbers the charts are drawn from (stable key order: goldens compare it)."""
        return {
            "zone": self.zone,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "totals": {o: self.totals.get(o, 0) for o in OUTCOMES},
            "other": self.other,
            "failure_rate": None if self.failure_rate is None else round(self.failure_rate, 4),
            "previous": {
                "finished": self.previous_finished,
                "failures": self.previous_failures,
                "failure_rate": None if self.previous_failure_rate is None else round(self.previous_failure_rate, 4),
            },
            "days": [{"day": d.day.isoformat(), **{o: d.get(o) for o in OUTCOMES}} for d in self.days],
            "graphs": [
                {
                    "graph": g.graph,
                    "graphs": g.graphs,
                    "finished": g.finished,
                    "failed": g.failed,
                    "partial": g.partial,
                    "rate": round(g.rate, 4),
                }
                for g in self.graphs
            ],
            "graph_count": self.graph_count,
            "durations": [
                {"name": d.name, "groups": d.groups, "count": d.count, "p50_s": d.p50_s, "p95_s": d.p95_s}
                for d in self.durations
            ],
            "most_failed": None
            if self.most_failed is None
            else {"graph": self.most_failed.graph, "failures": self.most_failed.failures},
            "slowest_import": None
            if self.slowest_import is None
            else {
                "graph": self.slowest_import.graph,
                "job_id": self.slowest_import.job_id,
                "seconds": self.slowest_import.seconds,
            },
        }


@dataclass(frozen=True, slots=True)
class StatsRow:
    """One job for aggregation: its project and the job itself (the store's snapshot, pared down)."""

    project: str
    job: Job


def _duration_s(job: Job) -> float | None:
    if job.begin_time is None or job.end_time is None or not job.is_terminal:
        return None
    return max(0.0, (job.end_time - job.begin_time).total_seconds())


def aggregate(
    rows: Iterable[StatsRow],
    zone: ZoneInfo,
    start: datetime,
    end: datetime,
    *,
    top_n: int = TOP_N,
) -> Stats:
    """Count ``rows`` that fall in ``[start, end)`` by local day and outcome (every day of the
    range appears, zero or not); rows in the equally long period just before ``start`` give the
    previous failure rate. Rows outside both are ignored, so callers may pass a superset."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    previous_start = start - (end - start)
    first_day, last_day = day_of(start, zone), day_of(end - timedelta(microseconds=1), zone)
    per_day: dict[date, Counter[str]] = {}
    day = first_day
    while day <= last_day:
        per_day[day] = Counter()
        day += timedelta(days=1)
    totals: Counter[str] = Counter()
    other = 0
    per_graph: dict[str, Counter[str]] = defaultdict(Counter)
    durations: dict[str, list[float]] = defaultdict(list)
    slowest: SlowJob | None = None
    previous_finished = previous_failures = 0
    for row in rows:
        job = row.job
        when = job_instant(job)
        if when is None:
            continue
        outcome = outcome_of(job.status)
        if previous_start <= when < start:
            if outcome in ("success", "partial", "failed"):
                previous_finished += 1
                previous_failures += outcome != "success"
            continue
        if not start <= when < end:
            continue
        if outcome is None:
            other += 1
            continue
        totals[outcome] += 1
        per_day.setdefault(day_of(when, zone), Counter())[outcome] += 1
        graph = job.graph or ""
        per_graph[graph][outcome] += 1
        seconds = _duration_s(job)
        if seconds is not None:
            durations[job.job_name or job.job_type or "?"].append(seconds)
            if job.job_name == IMPORT_JOB and (slowest is None or seconds > slowest.seconds):
                slowest = SlowJob(row.project, job.job_id, graph, job.job_name, seconds)
    days = tuple(DayCounts(d, **{o: c[o] for o in OUTCOMES}) for d, c in sorted(per_day.items()))
    rates = [
        GraphRate(g, c["success"] + c["partial"] + c["failed"], c["failed"], c["partial"]) for g, c in per_graph.items()
    ]
    # Most failures first, then the worse rate, then the name: stable for goldens.
    rates.sort(key=lambda r: (-r.failures, -r.rate, -r.finished, r.graph))
    most_failed = rates[0] if rates and rates[0].failures else None
    return Stats(
        zone=zone.key,
        start=start,
        end=end,
        days=days,
        graphs=_top_graphs(rates, top_n),
        graph_count=len(rates),
        durations=_top_durations(durations, top_n),
        other=other,
        previous_finished=previous_finished,
        previous_failures=previous_failures,
        slowest_import=slowest,
        most_failed=most_failed,
        totals={o: totals[o] for o in OUTCOMES},
    )


def _top_graphs(rates: list[GraphRate], top_n: int) -> tuple[GraphRate, ...]:
    if len(rates) <= top_n:
        return tuple(rates)
    shown, rest = rates[: top_n - 1], rates[top_n - 1 :]
    others = GraphRate(
        f"others ({len(rest)} graphs)",
        sum(r.finished for r in rest),
        sum(r.failed for r in rest),
        sum(r.partial for r in rest),
        graphs=len(rest),
    )
    return (*shown, others)


def _top_durations(durations: dict[str, list[float]], top_n: int) -> tuple[DurationRow, ...]:
    rows = [DurationRow(name, len(v), percentile(v, 50), percentile(v, 95)) for name, v in durations.items()]
    rows.sort(key=lambda r: (-r.p95_s, r.name))
    if len(rows) <= top_n:
        return tuple(rows)
    shown, rest = rows[: top_n - 1], rows[top_n - 1 :]
    pooled = [s for r in rest for s in durations[r.name]]
    others = DurationRow(
        f"others ({len(rest)} types)", len(pooled), percentile(pooled, 50), percentile(pooled, 95), groups=len(rest)
    )
    return (*shown, others)


@dataclass(frozen=True, slots=True)
class Flaky:
    """A graph that failed (fully or partially) ``failures`` of its last ``runs`` finished jobs."""

    graph: str
    failures: int
    runs: int


def flaky_graphs(rows: Iterable[StatsRow], *, last: int = 5, min_failures: int = 2) -> list[Flaky]:
    """Graphs whose last ``last`` finished jobs include at least ``min_failures`` failures or
    partial failures — worst first, then by name."""
    finished: dict[str, list[tuple[datetime, str, str]]] = defaultdict(list)
    for row in rows:
        job = row.job
        when = job_instant(job)
        outcome = outcome_of(job.status)
        if when is None or outcome not in ("success", "partial", "failed"):
            continue
        finished[job.graph or ""].append((when, job.job_id, outcome))
    flaky: list[Flaky] = []
    for graph, runs in finished.items():
        recent = sorted(runs, reverse=True)[:last]
        failures = sum(1 for _, _, outcome in recent if outcome != "success")
        if failures >= min_failures:
            flaky.append(Flaky(graph, failures, len(recent)))
    flaky.sort(key=lambda f: (-f.failures / f.runs, -f.failures, f.graph))
    return flaky
