"""watch.diff: the rules that turn what the job center says into events (pure, `now` passed in)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from ges_bot.domain import EventKind, FileImport, FileKind, Job, JobEvent
from ges_bot.store.api import Outcome, Snapshot
from ges_bot.watch.diff import DiffResult, diff

P = "prod"
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=1)
STUCK = timedelta(hours=6)


def job(
    job_id: str,
    status: str,
    *,
    graph: str = "g1",
    name: str = "ImportGraph",
    begin: datetime | None = T0,
    end: datetime | None = None,
    files: tuple[FileImport, ...] = (),
) -> Job:
    if end is None and status in ("success", "failed", "partiallyFailed"):
        end = NOW - timedelta(seconds=10)
    return Job(
        job_id=job_id,
        status=status,
        job_type="GraphManagement",
        job_name=name,
        graph=graph,
        begin_time=begin,
        end_time=end,
        files=files,
    )


def snap(j: Job, *, first_seen: datetime = T0, stuck: bool = False) -> Snapshot:
    return Snapshot(project=P, job=j, first_seen=first_seen, last_seen=T0, last_change=first_seen, stuck_reported=stuck)


def run(
    previous: list[Job] | dict[str, Snapshot],
    fetched: list[Job],
    *,
    outcomes: Sequence[Outcome] = (),
    now: datetime = NOW,
    baseline: bool = False,
    backfill_since: datetime | None = None,
) -> DiffResult:
    prev = previous if isinstance(previous, dict) else {j.job_id: snap(j) for j in previous}
    return diff(
        P,
        prev,
        fetched,
        {(o.graph, o.job_name): o for o in outcomes},
        now,
        stuck_after=STUCK,
        baseline=baseline,
        backfill_since=backfill_since,
    )


def summary(events: tuple[JobEvent, ...]) -> list[tuple[str, str, str | None, str | None]]:
    return [(e.job.job_id, e.kind.value, e.previous_status, e.recovers_job_id) for e in events]


def test_running_to_failed_is_a_failed_event_carrying_the_new_job() -> None:
    failed = job("j1", "failed")
    result = run([job("j1", "running")], [failed])
    assert summary(result.events) == [("j1", "failed", "running", None)]
    event = result.events[0]
    assert event.job == failed
    assert event.at == NOW
    assert event.project == P
    (s,) = result.snapshots
    assert s.job == failed
    assert (s.first_seen, s.last_seen, s.last_change) == (T0, NOW, NOW)
    assert result.outcomes == (Outcome(P, "g1", "ImportGraph", "j1", "failed", failed.end_time),)  # type: ignore[arg-type]


def test_a_job_first_seen_already_failed_is_an_event() -> None:
    result = run([], [job("j1", "failed")])
    assert summary(result.events) == [("j1", "failed", None, None)]
    assert result.snapshots[0].first_seen == NOW


def test_partially_failed_event_carries_the_per_file_causes() -> None:
    files = (
        FileImport(FileKind.VERTEX, "obs://b/v.csv", "success", total_lines=10, failed_lines=0),
        FileImport(FileKind.EDGE, "obs://b/e.csv", "partFailed", cause="bad row 7", failed_lines=1),
    )
    result = run([job("j1", "running")], [job("j1", "partiallyFailed", files=files)])
    (event,) = result.events
    assert event.kind is EventKind.PARTIALLY_FAILED
    assert [(f.path, f.cause) for f in event.job.problem_files] == [("obs://b/e.csv", "bad row 7")]


def test_success_after_a_failure_of_the_same_job_name_is_a_recovery() -> None:
    before = Outcome(P, "g1", "ImportGraph", "old", "failed", T0 - timedelta(hours=1))
    result = run([job("j2", "running")], [job("j2", "success")], outcomes=[before])
    assert summary(result.events) == [("j2", "recovered", "running", "old")]
    assert [(o.job_id, o.status) for o in result.outcomes] == [("j2", "success")]


def test_success_after_a_partial_failure_is_a_recovery_but_after_a_success_is_not() -> None:
    partial = Outcome(P, "g1", "ImportGraph", "old", "partiallyFailed", T0 - timedelta(hours=1))
    assert summary(run([], [job("j2", "success")], outcomes=[partial]).events) == [("j2", "recovered", None, "old")]
    ok = Outcome(P, "g1", "ImportGraph", "old", "success", T0 - timedelta(hours=1))
    assert summary(run([], [job("j2", "success")], outcomes=[ok]).events) == [("j2", "succeeded", None, None)]


def test_recovery_needs_the_same_graph_and_job_name() -> None:
    other_graph = Outcome(P, "g2", "ImportGraph", "old", "failed", T0)
    other_name = Outcome(P, "g1", "ExportGraph", "old2", "failed", T0)
    result = run([], [job("j2", "success")], outcomes=[other_graph, other_name])
    assert summary(result.events) == [("j2", "succeeded", None, None)]


def test_two_runs_in_one_tick_resolve_in_end_time_order() -> None:
    # The failure ended first, then the retry succeeded: a recovery. Fetched in the other order.
    fail = job("a", "failed", end=NOW - timedelta(seconds=50))
    ok = job("b", "success", end=NOW - timedelta(seconds=5))
    result = run([], [ok, fail])
    assert sorted(summary(result.events)) == [("a", "failed", None, None), ("b", "recovered", None, "a")]
    assert [(o.job_id, o.status) for o in result.outcomes] == [("b", "success")]

    # The other way round: the success came first, the failure is the last word.
    ok_first = job("b", "success", end=NOW - timedelta(seconds=50))
    fail_last = job("a", "failed", end=NOW - timedelta(seconds=5))
    result = run([], [fail_last, ok_first])
    assert sorted(summary(result.events)) == [("a", "failed", None, None), ("b", "succeeded", None, None)]
    assert [(o.job_id, o.status) for o in result.outcomes] == [("a", "failed")]


def test_a_run_that_ended_before_the_stored_outcome_neither_recovers_nor_replaces_it() -> None:
    newer_failure = Outcome(P, "g1", "ImportGraph", "new", "failed", NOW - timedelta(seconds=5))
    late_report = job("old", "success", end=NOW - timedelta(minutes=30))
    result = run([job("old", "running")], [late_report], outcomes=[newer_failure])
    assert summary(result.events) == [("old", "succeeded", "running", None)]
    assert result.outcomes == ()


def test_pending_to_running_is_status_changed_and_unchanged_is_silent() -> None:
    result = run([job("j1", "pending"), job("j2", "running")], [job("j1", "running"), job("j2", "running")])
    assert summary(result.events) == [("j1", "status_changed", "pending", None)]
    by_id = {s.job.job_id: s for s in result.snapshots}
    assert by_id["j1"].last_change == NOW
    assert (by_id["j2"].last_change, by_id["j2"].last_seen) == (T0, NOW)


def test_leaving_running_or_pending_for_an_unknown_status_is_an_unknown_outcome() -> None:
    cancelled = job("j1", "cancelled", end=NOW - timedelta(seconds=5))
    result = run([job("j1", "running"), job("j2", "pending")], [cancelled, job("j2", "Stopped")])

    assert sorted(summary(result.events)) == [
        ("j1", "unknown_outcome", "running", None),
        ("j2", "unknown_outcome", "pending", None),
    ]
    # The raw status is kept, in the event and the snapshot; no outcome is remembered.
    assert result.events[0].job == cancelled
    assert {s.job.job_id: s.job.status for s in result.snapshots} == {"j1": "cancelled", "j2": "Stopped"}
    assert result.outcomes == ()
    # One key per (job, status): the store alerts on it once, ever.
    assert result.events[0].dedup_key == f"{P}\x1fj1\x1fcancelled"


def test_an_active_status_in_another_case_is_an_unknown_outcome_too() -> None:
    result = run([job("j1", "running")], [job("j1", "Running")])
    assert summary(result.events) == [("j1", "unknown_outcome", "running", None)]


def test_after_an_unknown_status_only_a_known_outcome_alerts() -> None:
    later = run([job("j1", "cancelled")], [job("j1", "failed")])
    back = run([job("j1", "cancelled")], [job("j1", "running")])
    other = run([job("j1", "cancelling")], [job("j1", "cancelled")])

    assert summary(later.events) == [("j1", "failed", "cancelled", None)]
    assert summary(back.events) == [("j1", "status_changed", "cancelled", None)]
    assert summary(other.events) == [("j1", "status_changed", "cancelling", None)]


def test_synonyms_of_outcomes_from_other_ges_apis_count_as_them() -> None:
    fetched = [
        job("j1", "Failed", end=NOW - timedelta(seconds=30), graph="a"),
        job("j2", "partFailed", end=NOW - timedelta(seconds=20), graph="b"),
        job("j3", "complete", end=NOW - timedelta(seconds=10), graph="c"),
        job("j4", "SUCCESS", end=NOW - timedelta(seconds=5), graph="d"),
    ]
    result = run([job(f"j{i}", "running") for i in range(1, 5)], fetched)

    assert summary(result.events) == [
        ("j1", "failed", "running", None),
        ("j2", "partially_failed", "running", None),
        ("j3", "succeeded", "running", None),
        ("j4", "succeeded", "running", None),
    ]
    assert [e.job.status for e in result.events] == ["Failed", "partFailed", "complete", "SUCCESS"]
    # Outcomes are remembered in the documented words.
    assert sorted(o.status for o in result.outcomes) == ["failed", "partiallyFailed", "success", "success"]


def test_a_synonym_success_recovers_a_failure() -> None:
    last = Outcome(P, "g1", "ImportGraph", "j0", "failed", T0)
    result = run([job("j1", "running")], [job("j1", "complete")], outcomes=[last])
    assert summary(result.events) == [("j1", "recovered", "running", "j0")]


def test_a_job_first_seen_in_an_unknown_status_alerts_except_as_old_history() -> None:
    ended = NOW - timedelta(minutes=2)
    fresh = run([], [job("j1", "cancelled", end=ended)])
    baseline = run([], [job("j1", "cancelled", end=ended)], baseline=True)
    backfilled = run([], [job("j1", "cancelled", end=ended)], baseline=True, backfill_since=NOW - timedelta(hours=1))
    too_old = run([], [job("j1", "cancelled", end=ended)], baseline=True, backfill_since=NOW - timedelta(minutes=1))

    assert summary(fresh.events) == [("j1", "unknown_outcome", None, None)]
    assert baseline.events == ()
    assert summary(backfilled.events) == [("j1", "unknown_outcome", None, None)]
    assert too_old.events == ()
    assert [s.job.status for s in baseline.snapshots] == ["cancelled"]


def test_a_terminal_job_never_goes_back() -> None:
    result = run([job("j1", "failed")], [job("j1", "running")])
    assert summary(result.events) == [("j1", "status_changed", "failed", None)]
    assert result.events[0].job.status == "running"
    assert result.snapshots[0].job.status == "failed"
    assert result.outcomes == ()
    # A different terminal status later is not a second alert either.
    result = run([job("j1", "failed")], [job("j1", "success")])
    assert summary(result.events) == [("j1", "status_changed", "failed", None)]
    assert result.snapshots[0].job.status == "failed"


def test_a_job_first_seen_active_is_a_snapshot_only() -> None:
    result = run([], [job("j1", "pending", begin=None), job("j2", "running")])
    assert result.events == ()
    assert {s.job.job_id for s in result.snapshots} == {"j1", "j2"}
    assert result.outcomes == ()


def test_stuck_once_past_the_threshold() -> None:
    running = job("j1", "running", begin=T0)
    assert run([running], [running], now=T0 + STUCK - timedelta(seconds=1)).events == ()
    result = run([running], [running], now=T0 + STUCK)
    assert summary(result.events) == [("j1", "stuck", "running", None)]
    assert result.snapshots[0].stuck_reported
    # Already reported: silent next time.
    again = run({"j1": result.snapshots[0]}, [running], now=T0 + STUCK + timedelta(hours=1))
    assert again.events == ()
    assert again.snapshots[0].stuck_reported


def test_stuck_counts_from_first_seen_when_begin_time_is_unknown() -> None:
    pending = job("j1", "pending", begin=None)
    prev = {"j1": snap(pending, first_seen=T0)}
    assert run(prev, [pending], now=T0 + timedelta(hours=5)).events == ()
    assert summary(run(prev, [pending], now=T0 + STUCK).events) == [("j1", "stuck", "pending", None)]


def test_stuck_job_that_fails_later_still_alerts_the_failure() -> None:
    running = job("j1", "running")
    prev = {"j1": snap(running, stuck=True)}
    result = run(prev, [job("j1", "failed")], now=T0 + timedelta(hours=8))
    assert summary(result.events) == [("j1", "failed", "running", None)]


def test_baseline_records_history_silently() -> None:
    history = [
        job("a", "failed", end=T0 - timedelta(days=2)),
        job("b", "success", end=T0 - timedelta(days=1)),
        job("c", "partiallyFailed", end=T0 - timedelta(hours=3)),
        job("d", "running", begin=NOW - timedelta(minutes=5)),
        job("e", "pending", begin=None),
    ]
    result = run([], history, baseline=True)
    assert result.events == ()
    assert len(result.snapshots) == 5
    # The outcome is the last run (c, partially failed), so the next success will be a recovery.
    assert [(o.job_id, o.status) for o in result.outcomes] == [("c", "partiallyFailed")]


def test_baseline_backfill_alerts_recent_failures_only() -> None:
    history = [
        job("old", "failed", end=T0 - timedelta(days=2)),
        job("recent", "failed", end=T0 - timedelta(minutes=30)),
        job("recent-partial", "partiallyFailed", graph="g2", end=T0 - timedelta(minutes=10)),
        job("recent-ok", "success", graph="g3", end=T0 - timedelta(minutes=10)),
    ]
    result = run([], history, baseline=True, backfill_since=T0 - timedelta(hours=1))
    assert sorted(summary(result.events)) == [
        ("recent", "failed", None, None),
        ("recent-partial", "partially_failed", None, None),
    ]


def test_baseline_marks_long_stuck_jobs_reported_without_alerting() -> None:
    ancient = job("j1", "running", begin=NOW - timedelta(days=1))
    result = run([], [ancient], baseline=True)
    assert result.events == ()
    assert result.snapshots[0].stuck_reported
    # With a backfill window reaching the moment it became stuck, it alerts.
    result = run([], [ancient], baseline=True, backfill_since=NOW - timedelta(days=1))
    assert summary(result.events) == [("j1", "stuck", "running", None)]


def test_duplicates_from_shifting_pages_keep_the_later_state_once() -> None:
    result = run([job("j1", "running")], [job("j1", "running"), job("j1", "failed"), job("j1", "running")])
    assert summary(result.events) == [("j1", "failed", "running", None)]
    assert [s.job.status for s in result.snapshots] == ["failed"]


def test_snapshots_not_fetched_are_left_alone() -> None:
    result = run([job("gone", "running")], [])
    assert result == DiffResult(events=(), snapshots=(), outcomes=())


_STATUSES = ["pending", "running", "success", "failed", "partiallyFailed", "complete", "cancelled"]


@given(
    prev=st.lists(st.sampled_from([*_STATUSES, None]), min_size=6, max_size=6),
    now_status=st.lists(st.sampled_from(_STATUSES), min_size=6, max_size=6),
    order=st.permutations(range(6)),
)
def test_order_of_the_listing_never_changes_the_result(
    prev: list[str | None], now_status: list[str], order: list[int]
) -> None:
    previous = [
        job(f"j{i}", s, end=T0 - timedelta(minutes=i) if s in ("success", "failed", "partiallyFailed") else None)
        for i, s in enumerate(prev)
        if s
    ]
    fetched = [
        job(
            f"j{i}",
            s,
            end=NOW - timedelta(seconds=10 * (i + 1)) if s in ("success", "failed", "partiallyFailed") else None,
        )
        for i, s in enumerate(now_status)
    ]
    a = run(previous, fetched)
    b = run(previous, [fetched[i] for i in order])
    assert sorted(summary(a.events)) == sorted(summary(b.events))
    assert sorted(a.snapshots, key=lambda s: s.job.job_id) == sorted(b.snapshots, key=lambda s: s.job.job_id)
    assert a.outcomes == b.outcomes
    # And never two events with one dedup key.
    keys = [e.dedup_key for e in a.events]
    assert len(keys) == len(set(keys))
