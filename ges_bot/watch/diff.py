"""Pure job diffing: previous snapshots + the jobs fetched now + ``now`` → events, snapshots, outcomes.

This module owns the rules that turn what the job center says into :class:`~ges_bot.domain.JobEvent`
values. It does no I/O and reads no clock (``now`` is an argument); it must not fetch, store, route
or render anything. The poller feeds it and commits what it returns in one transaction.

Rules
-----
- A job seen before whose status did not change: ``last_seen`` moves, nothing else (no event).
- pending/running/unknown → a terminal status: ``failed``, ``partially_failed`` or ``succeeded``;
  a success whose (graph, job_name)'s last terminal outcome was a failure (or a partial one) is
  ``recovered`` instead, carrying ``recovers_job_id``. Synonyms of the outcomes other GES APIs
  use count as them (``Failed``, ``partFailed``, ``complete``: :func:`ges_bot.domain.outcome_of`);
  the event keeps the raw status.
- pending/running → a status ges-bot does not know (``cancelled``…): ``unknown_outcome``, alerted
  like a failure (it may be one), so a new GES status cannot hide a failure. A later known
  outcome of the same job is an event as usual.
- Any other change (pending → running, unknown → running or another unknown status):
  ``status_changed``, recorded and never alerted.
- A terminal job never goes back: if GES reports another status for it, that is recorded as
  ``status_changed`` while the snapshot keeps the terminal status (and no second alert follows).
- A job first seen active: snapshot only. A job first seen already terminal (it started and ended
  between two polls), or already in an unknown status, is an event like any such transition —
  except on the *baseline* tick (the first tick of a project), where history is recorded
  silently; only failures (unknown outcomes included) whose ``end_time`` ≥ ``backfill_since``
  still alert then.
- ``stuck``: active for ``stuck_after`` or more since ``begin_time`` (``first_seen`` when GES gives
  no begin time); once per job (``stuck_reported``). On the baseline tick a job that was already
  stuck before ``backfill_since`` is marked reported silently, like the rest of history.
- Outcomes: every terminal transition updates its (graph, job_name) outcome. A tick's terminal
  transitions are processed in ``end_time`` order, so two runs of the same import finishing within
  one tick resolve as they happened. An outcome is never replaced by a run that *ended* earlier
  than the stored one (a slow job reported late), and such a run never counts as a recovery.
- At most one event per (project, job_id, status) — ``JobEvent.dedup_key`` — within a tick; the
  store enforces it forever.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ges_bot.domain import ACTIVE_STATUSES, EventKind, Job, JobEvent, JobStatus, outcome_of
from ges_bot.store.api import Outcome, Snapshot

__all__ = ["DiffResult", "diff", "outcome_key"]

_TERMINAL_KIND: dict[str, EventKind] = {
    JobStatus.FAILED: EventKind.FAILED,
    JobStatus.PARTIALLY_FAILED: EventKind.PARTIALLY_FAILED,
    JobStatus.SUCCESS: EventKind.SUCCEEDED,
}
_FAILURES: frozenset[str] = frozenset({JobStatus.FAILED, JobStatus.PARTIALLY_FAILED})


@dataclass(frozen=True, slots=True)
class DiffResult:
    """What one tick learnt: events to record, snapshots and outcomes to write (new or updated)."""

    events: tuple[JobEvent, ...]
    snapshots: tuple[Snapshot, ...]
    outcomes: tuple[Outcome, ...]


def outcome_key(job: Job) -> tuple[str, str]:
    """The (graph, job_name) a job's terminal result is remembered under."""
    return (job.graph or "", job.job_name or "")


def _rank(job: Job) -> int:
    # When a listing shifts between pages the same job can come back twice, in two states;
    # the one further along its life is the newer truth.
    if job.is_terminal:
        return 3
    if job.status == JobStatus.RUNNING:
        return 1
    if job.status == JobStatus.PENDING:
        return 0
    return 2


def _dedupe(fetched: Iterable[Job]) -> dict[str, Job]:
    jobs: dict[str, Job] = {}
    for job in fetched:
        seen = jobs.get(job.job_id)
        if seen is None or _rank(job) > _rank(seen):
            jobs[job.job_id] = job
    return jobs


def _ended(job: Job, now: datetime) -> datetime:
    return job.end_time or now


def diff(
    project: str,
    previous: Mapping[str, Snapshot],
    fetched: Iterable[Job],
    outcomes: Mapping[tuple[str, str], Outcome],
    now: datetime,
    *,
    stuck_after: timedelta,
    baseline: bool = False,
    backfill_since: datetime | None = None,
) -> DiffResult:
    """Compare the jobs fetched now with what was known; see the module docstring for the rules.

    ``previous`` needs only the relevant snapshots: the active ones and those of the jobs fetched
    now. Snapshots of jobs not fetched are left alone (not returned). ``outcomes`` needs the
    outcomes of the (graph, job_name) pairs of the fetched terminal jobs.
    """
    jobs = _dedupe(fetched)
    snapshots: dict[str, Snapshot] = {}
    events: list[JobEvent] = []
    # Terminal transitions wait until every job is seen, to be processed in end_time order.
    terminal: list[tuple[Job, str | None]] = []

    def unknown_outcome(job: Job, previous_status: str | None) -> None:
        if baseline and not (
            backfill_since is not None and job.end_time is not None and job.end_time >= backfill_since
        ):
            return
        events.append(JobEvent(project, EventKind.UNKNOWN_OUTCOME, job, at=now, previous_status=previous_status))

    for job_id, job in jobs.items():
        prev = previous.get(job_id)
        if prev is None:
            snapshots[job_id] = Snapshot(project=project, job=job, first_seen=now, last_seen=now, last_change=now)
            if job.is_terminal:
                terminal.append((job, None))
            elif job.is_unknown_status:
                unknown_outcome(job, None)
            continue
        old = prev.job
        if old.status == job.status:
            snapshots[job_id] = replace(prev, job=job, last_seen=now)
            continue
        if old.is_terminal:
            # GES says a finished job is not finished (or finished differently): keep the record
            # terminal, note what was said, alert nothing.
            snapshots[job_id] = replace(prev, last_seen=now)
            if not baseline:
                events.append(JobEvent(project, EventKind.STATUS_CHANGED, job, at=now, previous_status=old.status))
            continue
        snapshots[job_id] = replace(prev, job=job, last_seen=now, last_change=now)
        if job.is_terminal:
            terminal.append((job, old.status))
        elif old.is_active and job.is_unknown_status:
            unknown_outcome(job, old.status)
        elif not baseline:
            events.append(JobEvent(project, EventKind.STATUS_CHANGED, job, at=now, previous_status=old.status))

    new_outcomes: dict[tuple[str, str], Outcome] = {}
    terminal.sort(key=lambda item: (_ended(item[0], now), item[0].begin_time or now, item[0].job_id))
    for job, previous_status in terminal:
        key = outcome_key(job)
        last = new_outcomes.get(key) or outcomes.get(key)
        ended = _ended(job, now)
        outcome = job.outcome
        assert outcome is not None  # only terminal jobs are queued here
        kind = _TERMINAL_KIND[outcome]
        recovers: str | None = None
        is_newer = last is None or ended >= last.at
        if kind is EventKind.SUCCEEDED and last is not None and is_newer and outcome_of(last.status) in _FAILURES:
            kind = EventKind.RECOVERED
            recovers = last.job_id
        if is_newer:
            # The outcome is remembered in the documented word, whatever synonym GES used.
            new_outcomes[key] = Outcome(project, key[0], key[1], job.job_id, outcome.value, ended)
        if baseline:
            backfilled = (
                backfill_since is not None
                and outcome in _FAILURES
                and job.end_time is not None
                and job.end_time >= backfill_since
            )
            if not backfilled:
                continue
        events.append(JobEvent(project, kind, job, at=now, previous_status=previous_status, recovers_job_id=recovers))

    for job_id, snap in list(snapshots.items()):
        job = snap.job
        if job.status not in ACTIVE_STATUSES or snap.stuck_reported:
            continue
        started = job.begin_time or snap.first_seen
        if now - started < stuck_after:
            continue
        snapshots[job_id] = replace(snap, stuck_reported=True)
        if baseline and (backfill_since is None or started + stuck_after < backfill_since):
            continue
        events.append(JobEvent(project, EventKind.STUCK, job, at=now, previous_status=job.status))

    return DiffResult(
        events=tuple(_unique(events)), snapshots=tuple(snapshots.values()), outcomes=tuple(new_outcomes.values())
    )


def _unique(events: list[JobEvent]) -> list[JobEvent]:
    seen: set[str] = set()
    out: list[JobEvent] = []
    for event in events:
        if event.dedup_key not in seen:
            seen.add(event.dedup_key)
            out.append(event)
    return out
