"""jobcenter.reading (pure): which reading probe answers show, and what is sent under each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ges_bot.domain import Job
from ges_bot.jobcenter.reading import (
    ASSUMED,
    UNDECIDED,
    Evidence,
    Probe,
    Reading,
    decide,
    describe,
    naive_offset_hint,
    trusts_count,
    wire_offset,
    wire_status,
)

STATUSES = ["success", "failed", "running", "pending", "partiallyFailed", "success", "success"]
JOBS = [Job(job_id=f"j{i}", status=s) for i, s in enumerate(STATUSES)]


def answer(
    *,
    job_count: str = "filtered",
    offset_unit: str = "item",
    status_filter: str = "all",
    waiting_word: str = "waiting",
    cap: int | None = None,
    jobs: list[Job] = JOBS,
) -> Evidence:
    """The probes ``JobCenterClient.calibrate`` sends, answered as a GES of that reading would."""

    def page(offset: int, limit: int, *, status: str | None = None, graph: str | None = None) -> Probe:
        if status is not None:
            refused = (status == "partiallyFailed" and status_filter == "no-partial") or (
                (status == "waiting" and waiting_word == "pending")
                or (status == "pending" and waiting_word == "waiting")
            )
            if refused:
                return Probe(offset=offset, limit=limit, jobs=None, status=status)
        wanted = "pending" if status in ("waiting", "pending") else status
        selected = [
            j for j in jobs if (graph is None) and (wanted is None or status_filter == "ignored" or j.status == wanted)
        ]
        size = min(limit, cap) if cap else limit
        start = {"item": offset, "page0": offset * size, "page1": max(offset - 1, 0) * size}[offset_unit]
        rows = selected[start : start + size]
        count = {"filtered": len(selected), "unfiltered": len(jobs), "page": len(rows)}[job_count]
        return Probe(offset=offset, limit=limit, job_count=count, jobs=tuple(rows), status=status, graph_name=graph)

    head, second = page(0, 5), page(1, 5)
    statuses = [page(0, 2, status="waiting")]
    if statuses[0].refused:
        statuses.append(page(0, 2, status="pending"))
    statuses.append(page(0, 2, status="partiallyFailed"))
    third = page(2, 5) if second.ids and second.ids == head.ids else None
    return Evidence(head, second, page(0, 1, graph="no-such-graph"), tuple(statuses), third)


@pytest.mark.parametrize(
    ("reading", "expected"),
    [
        ({}, {"job_count": "filtered", "offset": "item", "status_filter": "all", "waiting_word": "waiting"}),
        ({"job_count": "unfiltered"}, {"job_count": "unfiltered"}),
        ({"job_count": "page"}, {"job_count": "page"}),
        ({"offset_unit": "page0"}, {"offset": "page0"}),
        ({"offset_unit": "page1"}, {"offset": "page1"}),
        ({"status_filter": "no-partial"}, {"refused": frozenset({"partiallyFailed"}), "status_filter": "all"}),
        ({"status_filter": "ignored"}, {"status_filter": "ignored"}),
        ({"waiting_word": "pending"}, {"waiting_word": "pending"}),
        ({"cap": 3}, {"limit_cap": 3, "offset": "item", "job_count": "filtered"}),
        (
            {"offset_unit": "page1", "job_count": "page", "cap": 3},
            {"offset": "page1", "job_count": "page", "limit_cap": 3},
        ),
        ({"offset_unit": "page0", "job_count": "unfiltered"}, {"offset": "page0", "job_count": "unfiltered"}),
    ],
)
def test_the_probes_show_each_reading(reading: dict[str, object], expected: dict[str, object]) -> None:
    decided = decide(answer(**reading))  # type: ignore[arg-type]
    assert {k: getattr(decided, k) for k in expected} == expected
    assert decided.decided


def test_an_empty_job_center_decides_nothing_and_every_rule_is_then_safe() -> None:
    decided = decide(answer(jobs=[]))
    assert (decided.job_count, decided.offset, decided.status_filter) == ("unknown", "unknown", "unknown")
    assert not decided.decided
    # No status filter (filter here), no trust in counts, offsets as items from 0.
    assert wire_status(decided, "failed") == (None, True)
    assert not trusts_count(decided, filtered=True, local_filter=False)
    assert not trusts_count(decided, filtered=False, local_filter=False)
    assert wire_offset(decided, 0, 100) == (0, 0)


def test_one_job_tells_counts_and_filters_but_not_how_offsets_count() -> None:
    decided = decide(answer(jobs=[Job(job_id="only", status="running")]))
    assert decided.offset == "zero"
    assert not decided.decided
    assert decided.job_count == "filtered"
    assert decided.status_filter == "all"


def test_what_is_sent_under_each_reading() -> None:
    assert wire_status(ASSUMED, "partiallyFailed") == ("partiallyFailed", False)
    assert wire_status(ASSUMED.with_refused("partiallyFailed"), "partiallyFailed") == (None, True)
    assert wire_status(Reading(**{**_fields(ASSUMED), "waiting_word": "pending"}), "waiting") == ("pending", False)
    assert wire_status(Reading(**{**_fields(ASSUMED), "status_filter": "ignored"}), "failed") == (None, True)
    page0 = Reading(**{**_fields(ASSUMED), "offset": "page0"})
    page1 = Reading(**{**_fields(ASSUMED), "offset": "page1"})
    assert wire_offset(page0, 200, 100) == (2, 0)
    assert wire_offset(page1, 200, 100) == (3, 0)
    assert wire_offset(page1, 250, 100) == (3, 50)  # the page holding item 250, its head dropped
    unfiltered = Reading(**{**_fields(ASSUMED), "job_count": "unfiltered"})
    assert trusts_count(unfiltered, filtered=False, local_filter=False)
    assert not trusts_count(unfiltered, filtered=True, local_filter=False)
    assert not trusts_count(ASSUMED, filtered=True, local_filter=True)


def test_the_reading_survives_the_poll_state_cursor() -> None:
    reading = Reading(
        job_count="page",
        offset="page1",
        status_filter="all",
        refused=frozenset({"partiallyFailed", "waiting"}),
        waiting_word="pending",
        limit_cap=50,
        times="naive",
        naive_offset_min=480,
    )
    cursor = reading.to_cursor()
    assert all(isinstance(v, int) for v in cursor.values())
    assert Reading.from_cursor(cursor) == reading
    assert Reading.from_cursor({}) is None
    assert Reading.from_cursor(UNDECIDED.to_cursor()) == UNDECIDED


def test_naive_times_ahead_of_the_clock_give_their_zone() -> None:
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    # A job begun two minutes ago, written as UTC+8 wall time and read as UTC.
    assert naive_offset_hint([now + timedelta(hours=8, minutes=-2)], now) == 480
    assert naive_offset_hint([now - timedelta(minutes=3), now + timedelta(minutes=2)], now) == 0
    assert naive_offset_hint([], now) == 0


def test_check_lines_name_each_fallback() -> None:
    reading = Reading(**{**_fields(ASSUMED), "refused": frozenset({"partiallyFailed"}), "job_count": "page"})
    lines = {point: (text, fallback) for point, text, fallback in describe(reading)}
    assert lines["status filter"] == ("partiallyFailed refused — listing without it and filtering here", True)
    assert lines["job_count"][1] is True
    assert lines["offset"] == ("counts jobs", False)
    assert describe(ASSUMED)[0] == ("job_count", "filtered total", False)


def _fields(reading: Reading) -> dict[str, object]:
    return {name: getattr(reading, name) for name in Reading.__slots__}
