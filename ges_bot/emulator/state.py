"""Everything the emulator remembers: jobs, tokens, faults, request counts, clock, scenario.

Owns :class:`EmulatorState`, the single mutable object behind the app (reachable in-process as
``app.state.emulator``). It is used from one event loop only, so it takes no locks. Every change
to the job set bumps ``version``, which invalidates the cached sort and filter results that keep
paging over 100k jobs cheap. Scenario progression and retention are lazy: :meth:`tick` runs them
up to the emulated ``now`` before each request is answered.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

from ges_bot.emulator.clock import EmulatedClock
from ges_bot.emulator.faults import FaultQueue
from ges_bot.emulator.iam import TokenRegistry
from ges_bot.emulator.model import ACTIVE, EmuJob, JobInputError
from ges_bot.emulator.query import JobQuery, filter_jobs, page_slice, sort_jobs
from ges_bot.emulator.settings import EmulatorSettings

__all__ = ["EmulatorState", "JobExistsError", "ScenarioDriver", "Stats"]


class JobExistsError(ValueError):
    """A control request tried to create a job whose id is taken."""


class ScenarioDriver(Protocol):
    """A scenario: seeds jobs at start and moves them along as emulated time passes."""

    name: str

    def advance(self, state: EmulatorState, now: datetime) -> None: ...


class Stats:
    """Public requests counted by ``METHOD /route/template`` (and by answer status), plus the
    last few requests (method, path, query, status, request id) so tests can see how a client paged."""

    def __init__(self, recent: int = 500) -> None:
        self.requests: Counter[str] = Counter()
        self.responses: Counter[str] = Counter()
        self.recent: deque[dict[str, Any]] = deque(maxlen=recent)

    def record(self, route: str, status: int, path: str, query: str, request_id: str = "") -> None:
        self.requests[route] += 1
        self.responses[f"{route} {status}"] += 1
        method = route.split(" ", 1)[0]
        self.recent.append({"method": method, "path": path, "query": query, "status": status, "request_id": request_id})

    def view(self) -> dict[str, Any]:
        return {"requests": dict(self.requests), "responses": dict(self.responses), "recent": list(self.recent)}

    def reset(self) -> None:
        self.requests.clear()
        self.responses.clear()
        self.recent.clear()


class EmulatorState:
    """The emulator's memory. Change jobs through these methods; code that edits an
    :class:`EmuJob` in place must call :meth:`touch` afterwards (cached list orders go stale)."""

    def __init__(self, settings: EmulatorSettings, *, clock: EmulatedClock | None = None) -> None:
        self.settings = settings
        self.clock = clock or EmulatedClock()
        self.tokens = TokenRegistry(settings)
        self.faults = FaultQueue()
        self.stats = Stats()
        self.scenario: ScenarioDriver | None = None
        self.version = 0
        self._jobs: dict[str, EmuJob] = {}
        self._seq = 0
        self._sorted: dict[str, list[EmuJob]] = {}
        self._filtered: dict[tuple[object, ...], list[EmuJob]] = {}
        self._cache_version = -1
        self._oldest: datetime | None = None
        self._purge_version = -1

    # --- time and progression -------------------------------------------------------------
    def now(self) -> datetime:
        return self.clock.now()

    def tick(self) -> None:
        """Bring scenario and retention up to the emulated now."""
        now = self.now()
        if self.scenario is not None:
            self.scenario.advance(self, now)
        retention = self.settings.retention_s
        if retention is not None:
            cutoff = now - timedelta(seconds=retention)
            # Skip the scan while nothing changed and the oldest finished job is still young.
            if self._purge_version != self.version or (self._oldest is not None and self._oldest < cutoff):
                self.purge_older_than(cutoff)

    def purge_older_than(self, cutoff: datetime) -> int:
        """Drop finished jobs that ended (or, lacking an end, began) before ``cutoff``."""
        doomed: list[str] = []
        oldest: datetime | None = None
        for job_id, job in self._jobs.items():
            when = job.end_time or job.begin_time
            if job.status in ACTIVE or when is None:
                continue
            if when < cutoff:
                doomed.append(job_id)
            elif oldest is None or when < oldest:
                oldest = when
        for job_id in doomed:
            del self._jobs[job_id]
        if doomed:
            self.touch()
        self._oldest = oldest
        self._purge_version = self.version
        return len(doomed)

    def touch(self) -> None:
        self.version += 1

    def update_settings(self, changes: dict[str, Any]) -> EmulatorSettings:
        self.settings = self.settings.with_changes(changes)
        self.touch()
        return self.settings

    # --- jobs ----------------------------------------------------------------------------
    def insert(self, job: EmuJob) -> EmuJob:
        if job.job_id in self._jobs:
            raise JobExistsError(f"job {job.job_id} already exists")
        self._seq += 1
        job.seq = self._seq
        self._jobs[job.job_id] = job
        self.touch()
        return job

    def add_from_input(self, data: dict[str, Any], *, project_id: str | None = None) -> EmuJob:
        """A job from a control-API body (see :meth:`EmuJob.from_input`)."""
        return self.insert(EmuJob.from_input(data, project_id=project_id or self.settings.project_id, now=self.now()))

    def add_many(self, items: Iterable[dict[str, Any]], *, project_id: str | None = None) -> list[EmuJob]:
        """All or nothing: every body is validated before any job is stored."""
        now = self.now()
        pid = project_id or self.settings.project_id
        return self.insert_many([EmuJob.from_input(item, project_id=pid, now=now) for item in items])

    def insert_many(self, jobs: list[EmuJob]) -> list[EmuJob]:
        """Store prebuilt jobs (all or nothing; ids must be new and distinct)."""
        ids = [j.job_id for j in jobs]
        if len(set(ids)) != len(ids) or any(i in self._jobs for i in ids):
            raise JobExistsError("the jobs contain a duplicate or an existing job_id")
        for job in jobs:
            self._seq += 1
            job.seq = self._seq
            self._jobs[job.job_id] = job
        self.touch()
        return jobs

    def get(self, job_id: str) -> EmuJob | None:
        return self._jobs.get(job_id)

    def patch(self, job_id: str, changes: dict[str, Any]) -> EmuJob:
        job = self._jobs[job_id]
        if not isinstance(changes, dict):
            raise JobInputError("a patch must be a JSON object")
        job.apply(changes, now=self.now())
        self.touch()
        return job

    def delete(self, job_id: str) -> None:
        del self._jobs[job_id]
        self.touch()

    def clear(self) -> int:
        n = len(self._jobs)
        self._jobs.clear()
        self.touch()
        return n

    def all_jobs(self) -> list[EmuJob]:
        """Every job of every project, by insertion."""
        return list(self._jobs.values())

    def __len__(self) -> int:
        return len(self._jobs)

    # --- queries -------------------------------------------------------------------------
    def _ordered(self, project_id: str) -> list[EmuJob]:
        if self._cache_version != self.version:
            self._sorted.clear()
            self._filtered.clear()
            self._cache_version = self.version
        ordered = self._sorted.get(project_id)
        if ordered is None:
            mine = (j for j in self._jobs.values() if j.project_id == project_id)
            ordered = sort_jobs(mine, self.settings.order, self.settings.seed)
            self._sorted[project_id] = ordered
        return ordered

    def select(self, project_id: str, query: JobQuery) -> list[EmuJob]:
        """Every job of ``project_id`` matching ``query``'s filters, in list order."""
        ordered = self._ordered(project_id)
        key = (project_id, *query.cache_key())
        hit = self._filtered.get(key)
        if hit is None:
            hit = filter_jobs(ordered, query, self.settings)
            self._filtered[key] = hit
        return hit

    def page(self, project_id: str, query: JobQuery) -> tuple[int, list[EmuJob]]:
        """(job_count, the jobs of this page), per the ``job_count`` and paging settings."""
        selected = self.select(project_id, query)
        jobs = selected[page_slice(query, self.settings)]
        if self.settings.job_count == "page":
            return len(jobs), jobs
        if self.settings.job_count == "unfiltered":
            return len(self._ordered(project_id)), jobs
        return len(selected), jobs

    def find(self, project_id: str, graph_id: str, job_id: str) -> EmuJob | None:
        job = self._jobs.get(job_id)
        if job is None or job.project_id != project_id or job.graph_id != graph_id:
            return None
        return job

    def insert_at_head(self, project_id: str) -> EmuJob:
        """A new running job placed first in the current list order (the ``shift`` fault)."""
        ordered = self._ordered(project_id)
        now = self.now()
        graph = next((j.related_graph for j in ordered if j.related_graph), "shift-graph")
        begin = now
        first = next((j.begin_time for j in ordered if j.begin_time is not None), None)
        if first is not None and self.settings.order == "asc":
            begin = first - timedelta(seconds=1)
        elif first is not None and self.settings.order == "desc":
            begin = max(now, first + timedelta(seconds=1))
        job = EmuJob.from_input(
            {"status": "running", "job_name": "StartGraph", "related_graph": graph},
            project_id=project_id,
            now=begin,
        )
        job = self.insert(job)
        if self.settings.order == "asc":
            # Ties on begin_time are broken by insertion; make this one sort first regardless.
            job.seq = -job.seq
            self.touch()
        return job
