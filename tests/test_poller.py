"""watch.poller against the real GES emulator and the real SqlStore: the exact events a tick
records, what it costs on the GES API, and how it survives outages, restarts and moving lists."""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import os
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from ges_bot.cli import main
from ges_bot.config import load_config
from ges_bot.domain import ALERTABLE_KINDS, EventKind, Subscription
from ges_bot.errors import JobCenterError
from ges_bot.jobcenter.client import JobCenterClient, JobList, ListQuery, Page
from ges_bot.runtime import schedule_polls
from ges_bot.store import SqlStore, open_store
from ges_bot.store.api import TickCommit, TickResult
from ges_bot.watch.cli import poll_once
from ges_bot.watch.poller import Cadence, Poller, TickReport, run_tick
from tests.support.emulator import EmulatorHandle, run_emulator

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ALIAS = "prod"
#: Requests the first tick spends learning the GES's reading (``JobCenterClient.calibrate``).
CALIBRATION = 5
#: A steady tick with nothing new: 2 active lists, 3 terminal lists, the arrivals (any status).
STEADY = 6
EVERYTHING = Subscription(id=-1, channel="C0ALERTS", graph_pattern="*", kinds=ALERTABLE_KINDS, source="config")

Summary = list[tuple[str, str, str | None]]


def summary(report: TickReport) -> Summary:
    return sorted((e.job.job_id, e.kind.value, e.previous_status) for e in report.events)


@dataclass
class World:
    emu: EmulatorHandle
    store: SqlStore
    client: JobCenterClient
    stuck_after: timedelta = timedelta(hours=6)
    backfill: timedelta = timedelta(0)
    pollers: dict[str, Poller] = field(default_factory=dict)

    def poller(self, replica: str = "r1", client: Any = None, **kw: Any) -> Poller:
        if replica not in self.pollers or client is not None or kw:
            self.pollers[replica] = Poller(
                self.emu.project_settings(alias=ALIAS),
                client or self.client,
                self.store,
                config_subscriptions=(EVERYTHING,),
                stuck_after=self.stuck_after,
                backfill=self.backfill,
                clock=self.emu.state.now,
                replica=replica,
                lease_ttl=timedelta(minutes=5),
                **kw,
            )
        return self.pollers[replica]

    async def tick(self, **kw: Any) -> TickReport:
        return await self.poller().tick(**kw)

    async def job(self, job_id: str, status: str = "running", **fields: Any) -> dict[str, Any]:
        fields.setdefault("job_name", "ImportGraph")
        fields.setdefault("related_graph", "movies")
        return await self.emu.add_job(job_id=job_id, status=status, **fields)


@contextlib.asynccontextmanager
async def world(
    db_url: str,
    *,
    page_size: int = 100,
    start: datetime = T0,
    retries: int = 0,
    **emulator: Any,
) -> AsyncIterator[World]:
    async with run_emulator(**emulator) as emu:
        await emu.set_time(start)
        store = await open_store(db_url)
        client = JobCenterClient(
            emu.project_settings(alias=ALIAS),
            page_size=page_size,
            max_retries=retries,
            timeout=5,
            backoff_base=0.01,
            backoff_cap=0.02,
        )
        w = World(emu=emu, store=store, client=client)
        try:
            yield w
        finally:
            await client.aclose()
            await w.store.close()  # a test may have swapped in a new store (restart)


def wire(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


# --- the basic transitions --------------------------------------------------------------------


async def test_running_job_that_fails_is_reported_once_and_queued(db_url: str) -> None:
    async with world(db_url) as w:
        await w.job("j-run")
        first = await w.tick()
        assert first.baseline
        assert first.events == ()
        assert (await w.tick()).events == ()

        await w.emu.advance(60)
        await w.emu.patch_job("j-run", status="failed", fail_reason="OBS path not found")
        report = await w.tick()
        assert summary(report) == [("j-run", "failed", "running")]
        event = report.events[0]
        assert event.job.fail_reason == "OBS path not found"
        assert event.job.graph == "movies"
        assert len(report.outbox_ids) == 1
        item = await w.store.outbox_item(report.outbox_ids[0])
        assert item is not None
        assert (item.delivery.channel, [e.job.job_id for e in item.delivery.events]) == ("C0ALERTS", ["j-run"])

        await w.emu.advance(60)
        again = await w.tick()
        assert again.events == ()
        assert again.outbox_ids == ()


async def test_a_job_that_appears_already_failed_is_reported(sqlite_url: str) -> None:
    async with world(sqlite_url) as w:
        await w.tick()
        await w.emu.advance(30)
        # Started and failed between two polls: never seen running.
        await w.job("j-quick", "failed", begin_time=wire(await w.emu.now() - timedelta(seconds=20)))
        report = await w.tick()
        assert summary(report) == [("j-quick", "failed", None)]
        assert (await w.tick()).events == ()


async def test_partially_failed_import_carries_its_per_file_causes(sqlite_url: str) -> None:
    detail = {
        "schema_path": [{"path": "movies/schema.xml", "status": "success", "log": None, "cause": None}],
        "vertexset_path": [
            {"path": "movies/vertex.csv", "status": "success", "total_lines": 10, "failed_lines": 0},
        ],
        "edgeset_path": [
            {
                "path": "movies/edge.csv",
                "status": "partFailed",
                "cause": "line 7: vertex 'v9' does not exist",
                "total_lines": 100,
                "failed_lines": 3,
                "successful_lines": 97,
            },
            None,
        ],
    }
    async with world(sqlite_url) as w:
        await w.job("j-imp")
        await w.tick()
        await w.emu.patch_job("j-imp", status="partiallyFailed", job_detail=detail)
        report = await w.tick()
        assert summary(report) == [("j-imp", "partially_failed", "running")]
        problems = report.events[0].job.problem_files
        assert [(f.path, f.status, f.cause, f.failed_lines) for f in problems] == [
            ("movies/edge.csv", "partFailed", "line 7: vertex 'v9' does not exist", 3)
        ]


async def test_a_success_after_a_failure_of_the_same_import_is_a_recovery(sqlite_url: str) -> None:
    async with world(sqlite_url) as w:
        await w.tick()
        await w.emu.advance(60)
        await w.job("j-1", "failed")
        await w.job("j-other", "success", related_graph="people")
        assert summary(await w.tick()) == [("j-1", "failed", None), ("j-other", "succeeded", None)]
        await w.emu.advance(600)
        await w.job("j-2")
        assert (await w.tick()).events == ()
        await w.emu.advance(60)
        await w.emu.patch_job("j-2", status="success")
        report = await w.tick()
        assert summary(report) == [("j-2", "recovered", "running")]
        assert report.events[0].recovers_job_id == "j-1"
        # The next success is a plain success again.
        await w.emu.advance(60)
        await w.job("j-3", "success")
        assert summary(await w.tick()) == [("j-3", "succeeded", None)]


async def test_stuck_is_reported_once_not_every_tick(sqlite_url: str) -> None:
    async with world(sqlite_url) as w:
        w.stuck_after = timedelta(hours=2)
        await w.job("j-slow", begin_time=wire(T0))
        await w.tick()
        await w.emu.advance(3600)
        assert (await w.tick()).events == ()
        await w.emu.advance(3601)
        assert summary(await w.tick()) == [("j-slow", "stuck", "running")]
        for _ in range(3):
            await w.emu.advance(600)
            assert (await w.tick()).events == ()
        # …and when it finally fails, that is reported too.
        await w.emu.patch_job("j-slow", status="failed")
        assert summary(await w.tick()) == [("j-slow", "failed", "running")]


async def test_pending_to_running_is_recorded_and_an_unknown_outcome_alerted(sqlite_url: str) -> None:
    async with world(sqlite_url) as w:
        await w.job("j-wait", "pending")
        await w.job("j-done", "running")
        await w.tick()
        await w.emu.patch_job("j-wait", status="running")
        report = await w.tick()
        assert summary(report) == [("j-wait", "status_changed", "pending")]
        assert report.outbox_ids == ()
        # A status GES invents tomorrow: listed by no status filter, found by the vanished lookup,
        # and alerted (it may be a failure). A synonym of an outcome counts as that outcome.
        await w.emu.patch_job("j-wait", status="cancelled")
        await w.emu.patch_job("j-done", status="complete")
        report = await w.tick()
        assert summary(report) == [("j-done", "succeeded", "running"), ("j-wait", "unknown_outcome", "running")]
        assert len(report.outbox_ids) == 1
        assert (await w.tick()).events == ()


# --- dates, days and long jobs ----------------------------------------------------------------


@pytest.mark.parametrize("field", ["begin_time", "end_time"])
@pytest.mark.parametrize("zone", ["UTC", "+08:00", "-10:00"])
async def test_jobs_spanning_midnight_utc(sqlite_url: str, field: str, zone: str) -> None:
    evening = datetime(2026, 3, 10, 23, 50, tzinfo=UTC)
    async with world(sqlite_url, start=evening, date_filter_field=field, date_filter_tz=zone) as w:
        await w.job("j-night", begin_time=wire(evening - timedelta(minutes=5)))
        await w.tick()
        assert (await w.tick()).events == ()
        await w.emu.advance(20 * 60)  # 00:10 the next day
        await w.emu.patch_job("j-night", status="failed")
        # Began and ended on either side of midnight, between two polls.
        await w.job(
            "j-between",
            "failed",
            begin_time=wire(evening + timedelta(minutes=5)),
            end_time=wire(evening + timedelta(minutes=15)),
        )
        report = await w.tick()
        assert summary(report) == [("j-between", "failed", None), ("j-night", "failed", "running")]
        await w.emu.advance(60)
        assert (await w.tick()).events == ()


@pytest.mark.parametrize("field", ["begin_time", "end_time"])
async def test_a_job_running_for_three_days_is_followed_to_its_end(sqlite_url: str, field: str) -> None:
    async with world(sqlite_url, date_filter_field=field) as w:
        w.stuck_after = timedelta(days=30)
        await w.job("j-long", begin_time=wire(T0))
        await w.tick()
        for _ in range(3 * 4):
            await w.emu.advance(6 * 3600)
            await w.job(f"j-daily-{await w.emu.now():%d%H}", "success", related_graph="people")
            report = await w.tick()
            assert [e.kind for e in report.events] == [EventKind.SUCCEEDED]
        await w.emu.advance(600)
        await w.emu.patch_job("j-long", status="failed", fail_reason="engine restarted")
        report = await w.tick()
        assert summary(report) == [("j-long", "failed", "running")]
        assert report.missing == ()
        assert (await w.tick()).events == ()
        active = await w.store.active_snapshots(ALIAS)
        assert active == {}


# --- first start, outages, restarts -----------------------------------------------------------


async def test_ten_thousand_historical_jobs_on_first_start_are_a_silent_baseline(sqlite_url: str) -> None:
    async with world(sqlite_url, page_size=500) as w:
        statuses = ["success"] * 7 + ["failed", "partiallyFailed", "success"]
        history = [
            {
                "job_id": f"h{i:05d}",
                "status": statuses[i % len(statuses)],
                "job_name": "ImportGraph",
                "related_graph": f"g{i % 37}",
                "begin_time": wire(T0 - timedelta(minutes=i + 5)),
                "end_time": wire(T0 - timedelta(minutes=i + 1)),
            }
            for i in range(10_000)
        ]
        history += [{"job_id": f"live{i}", "status": "running", "related_graph": "g1"} for i in range(5)]
        await w.emu.add_jobs(history)
        await w.emu.reset_stats()
        report = await w.tick()
        assert report.baseline
        assert report.events == ()
        assert report.outbox_ids == ()
        assert report.requests == await w.emu.list_calls() <= 10_005 // 500 + 2 + CALIBRATION
        assert len(await w.store.job_ids_with_status(ALIAS, "failed")) == 1000
        assert len(await w.store.job_ids_with_status(ALIAS, "success")) == 8000
        assert len(await w.store.active_snapshots(ALIAS)) == 5
        # The next ticks are quiet too, and a new failure is one alert.
        assert (await w.tick()).events == ()
        assert (await w.tick()).events == ()
        await w.job("j-new", "failed", related_graph="g3")
        assert summary(await w.tick()) == [("j-new", "failed", None)]


async def test_backfill_alerts_recent_failures_on_first_start(sqlite_url: str) -> None:
    async with world(sqlite_url) as w:
        w.backfill = timedelta(hours=1)
        await w.job("j-old", "failed", begin_time=wire(T0 - timedelta(hours=5)), end_time=wire(T0 - timedelta(hours=4)))
        await w.job(
            "j-recent", "failed", begin_time=wire(T0 - timedelta(minutes=50)), end_time=wire(T0 - timedelta(minutes=30))
        )
        await w.job(
            "j-ok", "success", begin_time=wire(T0 - timedelta(minutes=50)), end_time=wire(T0 - timedelta(minutes=30))
        )
        report = await w.tick()
        assert report.baseline
        assert summary(report) == [("j-recent", "failed", None)]
        assert len(report.outbox_ids) == 1


async def test_ges_503_for_five_ticks_then_the_missed_transitions_are_reported_once(db_url: str) -> None:
    async with world(db_url) as w:
        w.stuck_after = timedelta(days=2)
        await w.job("j-a")
        await w.job("j-b", "pending", related_graph="people")
        await w.job("j-c", related_graph="roads")
        await w.tick()
        await w.emu.advance(60)
        assert (await w.tick()).events == ()
        last_success = await w.emu.now()
        await w.emu.fault(status=503, count=5, error_code="GES.7005", error_msg="engine unavailable")
        poller = w.poller()
        for attempt in range(5):
            await w.emu.advance(3 * 3600)  # 15 hours in all: the outage crosses midnight UTC
            assert await run_tick(poller) is None
            if attempt == 2:
                await w.emu.patch_job("j-a", status="failed")
        await w.emu.patch_job("j-b", status="running")
        await w.emu.patch_job("j-c", status="success")
        await w.job(
            "j-d",
            "partiallyFailed",
            related_graph="ships",
            begin_time=wire(T0 + timedelta(hours=9)),
            end_time=wire(T0 + timedelta(hours=10)),
        )
        state = await w.store.poll_state(ALIAS)
        assert state is not None
        assert state.consecutive_failures == 5
        assert state.last_error is not None
        assert "503" in state.last_error
        assert "engine unavailable" in state.last_error
        assert state.last_success_at is not None
        assert state.last_success_at <= last_success

        report = await w.tick()
        assert summary(report) == [
            ("j-a", "failed", "running"),
            ("j-b", "status_changed", "pending"),
            ("j-c", "succeeded", "running"),
            ("j-d", "partially_failed", None),
        ]
        state = await w.store.poll_state(ALIAS)
        assert state is not None
        assert state.consecutive_failures == 0
        assert state.last_error is None
        await w.emu.advance(60)
        assert (await w.tick()).events == ()


async def test_new_poller_on_the_same_database_repeats_nothing(db_url: str) -> None:
    async with world(db_url) as w:
        await w.job("j-1")
        await w.job("j-2")
        await w.tick()
        await w.emu.patch_job("j-1", status="failed")
        assert summary(await w.tick()) == [("j-1", "failed", "running")]
        await w.emu.patch_job("j-2", status="failed")

        # Restart: a new store connection, a new client, a new Poller (same replica name, as a
        # restarted container keeps its name; a new one would wait for the lease to expire).
        await w.store.close()
        store = await open_store(db_url)
        client = JobCenterClient(w.emu.project_settings(alias=ALIAS), max_retries=0, timeout=5)
        try:
            restarted = Poller(
                w.emu.project_settings(alias=ALIAS),
                client,
                store,
                config_subscriptions=(EVERYTHING,),
                clock=w.emu.state.now,
                replica="r1",
            )
            report = await restarted.tick()
            assert summary(report) == [("j-2", "failed", "running")]
            assert (await restarted.tick()).events == ()
        finally:
            await client.aclose()
            w.store = store


async def test_an_active_job_deleted_from_ges_is_kept_with_a_warning_and_looked_up_rarely(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with world(sqlite_url) as w:
        await w.job("j-gone")
        await w.tick()
        await w.emu.delete_job("j-gone")
        report = await w.tick()
        assert report.events == ()
        assert report.missing == ("j-gone",)
        assert "j-gone" in caplog.text
        assert (await w.store.active_snapshots(ALIAS)).keys() == {"j-gone"}
        # Within the back-off the lookup is not repeated: the usual six requests only.
        await w.emu.advance(60)
        await w.emu.reset_stats()
        assert (await w.tick()).missing == ("j-gone",)
        assert await w.emu.list_calls() == STEADY
        await w.emu.advance(180)
        await w.emu.reset_stats()
        await w.tick()
        # The lookup: its graph since its begin date, then (not found there) the graph's whole list.
        assert await w.emu.list_calls() == STEADY + 2


# --- degrade, never stop ----------------------------------------------------------------------


async def test_a_status_filter_refused_mid_run_still_alerts_that_tick_and_the_reading_is_redone(
    sqlite_url: str,
) -> None:
    """The GES starts refusing status=partiallyFailed after the bot learnt it accepts it: that
    scan falls back (no status filter, filtered here), the partial failure is alerted that very
    tick, and the next tick's calibration records the refusal."""
    async with world(sqlite_url) as w:
        await w.job("j-run")
        await w.job("j-other", "success", related_graph="roads")
        await w.tick()
        await w.emu.advance(60)
        await w.tick()
        await w.emu.configure(status_filter="no-partial")
        await w.emu.advance(60)
        await w.emu.patch_job("j-run", status="partiallyFailed")
        report = await w.tick()
        assert summary(report) == [("j-run", "partially_failed", "running")]
        assert report.degraded is None
        assert "partiallyFailed" in w.client.reading.refused
        await w.emu.advance(60)
        await w.job("j-quick", "partiallyFailed", related_graph="ships")
        report = await w.tick()
        assert summary(report) == [("j-quick", "partially_failed", None)]
        state = await w.store.poll_state(ALIAS)
        assert state is not None and state.last_error is None
        assert state.cursor["reading:refused"] != 0  # kept per project


async def test_one_scan_failing_commits_what_the_others_found_and_says_so(db_url: str) -> None:
    """An unreadable answer to one listing does not cost the alerts the other listings found, and
    the tick is recorded degraded (last error set, last success kept) — not as a success."""
    async with world(db_url) as w:
        await w.job("j-run")
        await w.tick()
        await w.emu.advance(60)
        await w.tick()
        before = await w.store.poll_state(ALIAS)
        assert before is not None
        await w.emu.advance(60)
        await w.emu.patch_job("j-run", status="failed")
        # The first listing of the tick (status=waiting) gets an HTML page instead of JSON.
        await w.emu.fault(malformed=True, count=1)
        report = await w.tick()
        assert summary(report) == [("j-run", "failed", "running")]
        assert report.degraded is not None and "status=waiting" in report.degraded
        state = await w.store.poll_state(ALIAS)
        assert state is not None
        assert state.last_error is not None and "status=waiting" in state.last_error
        assert state.consecutive_failures == 1
        assert state.last_error_kind == "unreadable"
        assert state.failing_since is not None  # in part blind since then (the ops channel's clock)
        assert state.last_success_at == before.last_success_at
        await w.emu.advance(60)
        report = await w.tick()
        assert report.degraded is None and report.events == ()
        state = await w.store.poll_state(ALIAS)
        assert state is not None and state.last_error is None and state.consecutive_failures == 0
        assert state.failing_since is None


# --- moving lists and orders ------------------------------------------------------------------


class MovingList:
    """A job source (our own interface) over the real client that inserts jobs into the emulator
    between two pages of one listing, as a busy job center would."""

    def __init__(self, client: JobCenterClient, emu: EmulatorHandle) -> None:
        self.client = client
        self.emu = emu
        self.page_size = client.page_size
        self.inserts: dict[int, list[dict[str, Any]]] = {}
        self.pages = 0

    @property
    def requests_sent(self) -> int:
        return self.client.requests_sent

    async def list_page(self, query: ListQuery, offset: int, limit: int) -> Page:
        page = await self.client.list_page(query, offset, limit)
        self.pages += 1
        for job in self.inserts.pop(self.pages, []):
            self.emu.state.add_from_input(job)
        return page

    async def list_jobs(self, query: ListQuery | None = None) -> JobList:
        return await self.client.list_jobs(query)

    def iter_pages(self, query: ListQuery | None = None) -> AsyncGenerator[Page, None]:
        return self.client.iter_pages(query)


@pytest.mark.parametrize("order", ["asc", "desc", "random"])
async def test_the_list_shifting_between_pages_loses_and_repeats_nothing(sqlite_url: str, order: str) -> None:
    async with world(sqlite_url, page_size=5, order=order) as w:
        source = MovingList(w.client, w.emu)
        poller = w.poller(client=source)
        history = [
            {
                "job_id": f"old{i:02d}",
                "status": "failed",
                "related_graph": f"g{i}",
                "begin_time": wire(T0 - timedelta(minutes=60 - i)),
            }
            for i in range(30)
        ]
        await w.emu.add_jobs(history)
        await poller.tick()
        await w.emu.advance(60)
        assert (await poller.tick()).events == ()
        await w.emu.advance(60)

        expected = set()
        for i in range(7):
            await w.job(f"new{i}", "failed", related_graph=f"n{i}")
            expected.add(f"new{i}")
        # Mid-tick, after the third page read one by one (the three terminal page-1s), three more
        # failures land in the list: at its head (desc), its tail (asc) or anywhere (random).
        source.pages = 0
        source.inserts = {
            3: [
                {"job_id": f"mid{i}", "status": "failed", "related_graph": f"m{i}", "job_name": "ImportGraph"}
                for i in range(3)
            ]
        }
        expected |= {f"mid{i}" for i in range(3)}
        seen: list[str] = []
        for _ in range(3):
            report = await poller.tick()
            assert all(e.kind is EventKind.FAILED for e in report.events)
            seen += [e.job.job_id for e in report.events]
            await w.emu.advance(60)
        assert sorted(seen) == sorted(expected)


async def _scripted_run(w: World) -> list[Summary]:
    """A day in a job center, the same whatever the list order."""
    w.stuck_after = timedelta(days=10)
    out: list[Summary] = []
    history = [
        {
            "job_id": f"h{i:03d}",
            "status": ["success", "failed"][i % 2],
            "related_graph": f"g{i % 5}",
            "job_name": "ImportGraph",
            "begin_time": wire(T0 - timedelta(hours=30) + timedelta(minutes=7 * i)),
            "end_time": wire(T0 - timedelta(hours=30) + timedelta(minutes=7 * i + 5)),
        }
        for i in range(240)
    ]
    await w.emu.add_jobs(history)
    await w.job("r1", begin_time=wire(T0 - timedelta(hours=1)), related_graph="g1")
    await w.job("r2", "pending", related_graph="g2")
    out.append(summary(await w.tick()))
    steps: list[Callable[[], Any]] = [
        lambda: w.emu.patch_job("r2", status="running"),
        lambda: w.job("n1", "failed", related_graph="g3"),
        lambda: w.emu.patch_job("r1", status="success"),
        lambda: w.job("n2", "success", related_graph="g3"),
        lambda: w.job("n3", "partiallyFailed", related_graph="g4"),
        lambda: w.emu.patch_job("r2", status="failed"),
    ]
    for step in steps:
        await w.emu.advance(7 * 3600)
        await step()
        out.append(summary(await w.tick()))
    return out


async def test_orders_asc_desc_and_random_give_the_same_events(sqlite_url: str, tmp_path: Path) -> None:
    results = {}
    for order in ("asc", "desc", "random"):
        url = f"sqlite:///{tmp_path / f'{order}.db'}"
        async with world(url, page_size=20, order=order) as w:
            results[order] = await _scripted_run(w)
    assert results["asc"] == [
        [],
        [("r2", "status_changed", "pending")],
        [("n1", "failed", None)],
        # g1's last run before r1 (h236) succeeded; g3's n1 failed, so n2 recovers it.
        [("r1", "succeeded", "running")],
        [("n2", "recovered", None)],
        [("n3", "partially_failed", None)],
        [("r2", "failed", "running")],
    ]
    assert results["desc"] == results["asc"]
    assert results["random"] == results["asc"]


# --- dry run, leases, scheduling --------------------------------------------------------------


async def test_dry_run_writes_nothing(sqlite_url: str) -> None:
    async with world(sqlite_url) as w:
        await w.job("j-1")
        await w.tick()
        await w.emu.patch_job("j-1", status="failed")
        dry = await w.tick(dry_run=True)
        assert dry.dry_run
        assert summary(dry) == [("j-1", "failed", "running")]
        assert (await w.store.active_snapshots(ALIAS)).keys() == {"j-1"}
        assert summary(await w.tick()) == [("j-1", "failed", "running")]


async def test_another_replica_holding_the_lease_skips_the_tick(sqlite_url: str) -> None:
    async with world(sqlite_url) as w:
        await w.job("j-1")
        await w.tick()
        other = w.poller("r2")
        await w.emu.reset_stats()
        skipped = await other.tick()
        assert skipped.skipped
        assert skipped.events == ()
        assert await w.emu.list_calls() == 0
        await w.poller().release()
        taken = await other.tick()
        assert not taken.skipped


async def test_scheduled_ticks_survive_errors_and_record_them(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with world(sqlite_url) as w:
        await w.job("j-1")
        await w.emu.fault(status=503, count=1, error_msg="service unavailable")
        scheduler = AsyncIOScheduler(timezone=UTC)
        schedule_polls(scheduler, [w.poller()], run_tick, interval_s=0.2)
        scheduler.start()
        try:
            for _ in range(100):
                state = await w.store.poll_state(ALIAS)
                if state is not None and state.last_success_at is not None:
                    break
                await asyncio.sleep(0.05)
        finally:
            scheduler.shutdown(wait=False)
        assert state is not None
        assert state.baselined_at is not None
        assert any("503" in r.getMessage() and "service unavailable" in r.getMessage() for r in caplog.records)
        assert (await w.store.active_snapshots(ALIAS)).keys() == {"j-1"}


# --- cost on the GES API ----------------------------------------------------------------------


async def test_steady_state_cost_does_not_grow_with_history(sqlite_url: str) -> None:
    async with world(sqlite_url, page_size=100) as w:
        day = [
            {
                "job_id": f"d{i:05d}",
                "status": "success" if i % 10 else "failed",
                "related_graph": f"g{i % 50}",
                "begin_time": wire(T0 - timedelta(seconds=8 * i + 60)),
                "end_time": wire(T0 - timedelta(seconds=8 * i + 30)),
            }
            for i in range(3000)
        ]
        day += [{"job_id": f"run{i}", "status": "running", "related_graph": f"g{i}"} for i in range(20)]
        await w.emu.add_jobs(day)
        await w.tick()  # baseline
        await w.tick()  # first cheap tick: full window listings, once
        costs = []
        for minute in range(5):
            await w.emu.advance(60)
            for i in range(7):  # ~10k jobs a day
                await w.job(f"new{minute}-{i}", "success", related_graph="g1")
            await w.emu.patch_job(f"run{minute}", status="failed")
            await w.emu.reset_stats()
            report = await w.tick()
            assert len(report.events) == 8
            costs.append(await w.emu.list_calls())
        # 2 active lists + 3 terminal page-1s + the last page of the two lists that grew (asc
        # order puts new jobs last): never the whole day (30 pages).
        assert max(costs) <= 7, costs


async def test_the_terminal_lists_are_probed_past_what_is_known(sqlite_url: str) -> None:
    """A known terminal list is asked from the offset of its remembered count: unchanged, GES
    sends no job at all; grown (ascending order), the one page holds exactly the newcomers."""
    async with world(sqlite_url, page_size=100) as w:
        await w.emu.add_jobs(
            [
                {
                    "job_id": f"d{i:04d}",
                    "status": "success" if i % 10 else "failed",
                    "related_graph": "g1",
                    "begin_time": wire(T0 - timedelta(seconds=20 * i + 60)),
                    "end_time": wire(T0 - timedelta(seconds=20 * i + 30)),
                }
                for i in range(1000)
            ]
        )
        await w.tick()  # baseline
        await w.tick()  # first cheap tick: full window listings, once
        await w.emu.advance(60)
        await w.emu.reset_stats()
        assert (await w.tick()).events == ()
        recent = (await w.emu.stats())["recent"]
        terminal = {r["query"] for r in recent if "start_time" in r["query"]}
        assert len(recent) == STEADY
        assert {q for q in terminal if "status=success" in q} == {
            f"status=success&start_time={(T0 - timedelta(days=1)).date()}&offset=900&limit=100"
        }
        assert any("status=failed" in q and "offset=100&" in q for q in terminal)

        await w.emu.advance(60)
        for i in range(7):
            await w.job(f"new{i}", "success", related_graph="g2")
        await w.job("new-f", "failed", related_graph="g2")
        await w.emu.reset_stats()
        report = await w.tick()
        assert sorted(e.job.job_id for e in report.events) == ["new-f", *(f"new{i}" for i in range(7))]
        assert await w.emu.list_calls() == STEADY


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_steady_ticks_cost_six_requests_in_either_order(sqlite_url: str, order: str) -> None:
    """Jobs that ran a while land a little before the end in ascending order (jobs begun after
    them finished first): the last page finds them. In descending order new jobs are on page 1,
    which the poller learns to read first."""
    async with world(sqlite_url, page_size=100, order=order) as w:
        await w.emu.add_jobs(
            [
                {
                    "job_id": f"d{i:04d}",
                    "status": "success",
                    "related_graph": "g1",
                    "begin_time": wire(T0 - timedelta(seconds=20 * i + 600)),
                    "end_time": wire(T0 - timedelta(seconds=20 * i + 570)),
                }
                for i in range(1000)
            ]
        )
        await w.tick()  # baseline
        await w.tick()  # first cheap tick: full window listings, once
        costs = []
        for minute in range(4):
            await w.emu.advance(60)
            # One job that began 8 minutes ago, and three quick ones begun and finished since.
            began = T0 + timedelta(minutes=minute - 8)
            await w.job(
                f"long{minute}", "success", begin_time=wire(began), end_time=wire(T0 + timedelta(minutes=minute))
            )
            for i in range(3):
                quick = T0 + timedelta(minutes=minute - 5 + i)
                await w.job(
                    f"quick{minute}-{i}",
                    "success",
                    begin_time=wire(quick),
                    end_time=wire(quick + timedelta(seconds=20)),
                )
            await w.emu.reset_stats()
            report = await w.tick()
            assert len(report.events) == 4
            costs.append(await w.emu.list_calls())
        # 2 active lists + 3 terminal lists + the arrivals; growth found where this order puts it.
        # Descending order pays twice to learn where (tail probe, last page, then page 1), once.
        assert costs[1:] == [STEADY if order == "desc" else STEADY + 1] * 3, costs


# --- the command line ---------------------------------------------------------------------------


def _env(emu: EmulatorHandle, db: str) -> dict[str, str]:
    return {
        "GES_ENDPOINT": emu.url,
        "GES_PROJECT_ID": emu.project_id,
        "GES_PROJECT_ALIAS": "prod",
        "HUAWEICLOUD_SDK_AK": emu.ak,
        "HUAWEICLOUD_SDK_SK": emu.sk,
        "GES_BOT_DATABASE_URL": db,
        "GES_BOT_GES_RETRIES": "0",
    }


async def _poll(env: dict[str, str], **kw: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await poll_once(load_config(env), out=out, err=err, **kw)
    return code, out.getvalue(), err.getvalue()


async def test_poll_once_prints_events_and_dry_run_writes_nothing(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    async with run_emulator() as emu:
        env = _env(emu, db)
        await emu.add_job(job_id="j-1", status="running", job_name="ImportGraph", related_graph="movies")
        code, out, err = await _poll(env, as_json=True)
        assert (code, out) == (0, "")
        assert "prod: recorded 0 event(s)" in err
        assert "baseline" in err
        await emu.patch_job("j-1", status="failed", fail_reason="no such file")

        code, out, err = await _poll(env, as_json=True, dry_run=True)
        assert code == 0, err
        (line,) = out.splitlines()
        event = json.loads(line)
        assert {
            k: event[k] for k in ("project", "job_id", "graph", "job_name", "kind", "status", "previous_status")
        } == {
            "project": "prod",
            "job_id": "j-1",
            "graph": "movies",
            "job_name": "ImportGraph",
            "kind": "failed",
            "status": "failed",
            "previous_status": "running",
        }
        assert event["fail_reason"] == "no such file"
        assert datetime.fromisoformat(event["at"]).tzinfo is not None
        assert "would record 1 event(s)" in err

        # Dry run wrote nothing: the real poll reports it, as a readable line.
        code, out, err = await _poll(env)
        assert code == 0, err
        assert "failed" in out
        assert "movies  ImportGraph  j-1  (running → failed)  — no such file" in out
        code, out, err = await _poll(env, as_json=True)
        assert (code, out) == (0, "")

        await emu.fault(status=503, count=-1, error_msg="service unavailable")
        code, out, err = await _poll(env)
        assert code == 1
        assert "ges-bot: project prod: GES answered HTTP 503" in err
        assert "service unavailable" in err
        assert emu.sk not in err
        store = await open_store(db)
        try:
            state = await store.poll_state("prod")
        finally:
            await store.close()
        assert state is not None
        assert state.last_error is not None
        assert "503" in state.last_error


async def test_ges_bot_poll_once_json_from_the_command_line(tmp_path: Path) -> None:
    async with run_emulator() as emu:
        env = _env(emu, f"sqlite:///{tmp_path / 'cli.db'}")
        await emu.add_job(job_id="j-1", status="failed", job_name="ImportGraph", related_graph="movies")
        await _poll(env)
        await emu.add_job(job_id="j-2", status="failed", job_name="ExportGraph", related_graph="movies")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ges_bot",
            "poll",
            "--once",
            "--json",
            env={"PATH": os.environ.get("PATH", ""), **env},
            cwd=Path(__file__).parents[1],
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        (line,) = out.decode().splitlines()
        assert json.loads(line)["job_id"] == "j-2"


async def _poll_process(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """``ges-bot poll --once`` in a process of its own (each run is a new replica, as from cron)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ges_bot",
        "poll",
        "--once",
        *args,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.environ.get("PYTHONPATH", ""), **env},
        cwd=Path(__file__).parents[1],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_poll_once_releases_its_lease_after_a_failed_run(tmp_path: Path) -> None:
    async with run_emulator() as emu:
        env = _env(emu, f"sqlite:///{tmp_path / 'cli.db'}")
        await emu.add_job(job_id="j-1", status="running", job_name="ImportGraph", related_graph="movies")
        assert (await _poll_process(env))[0] == 0
        await emu.fault(status=503, count=-1)

        failed = await _poll_process(env)
        await emu.clear_faults()
        await emu.patch_job("j-1", status="failed")
        after = await _poll_process(env, "--json")

    code, _, err = failed
    assert code == 1
    assert "GES answered HTTP 503" in err
    code, out, err = after
    assert code == 0, err
    assert "not polled" not in err
    assert [json.loads(line)["kind"] for line in out.splitlines()] == ["failed"]


async def test_poll_once_that_polled_nothing_exits_non_zero(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    async with run_emulator() as emu:
        env = _env(emu, db)
        assert (await _poll(env))[0] == 0
        store = await open_store(db)
        try:
            assert await store.try_lease("poll:prod", "a-running-bot", datetime.now(UTC), 300)
            code, out, err = await _poll(env)
            holder = await store.lease_holder("poll:prod", datetime.now(UTC))
        finally:
            await store.close()

    assert code == 1
    assert "prod: not polled — another ges-bot replica holds the poll lease for this project" in err
    assert out == ""
    # Not ours to release: the other replica keeps it.
    assert holder is not None
    assert holder[0] == "a-running-bot"


async def test_poll_once_json_names_an_unknown_outcome(tmp_path: Path) -> None:
    async with run_emulator() as emu:
        env = _env(emu, f"sqlite:///{tmp_path / 'cli.db'}")
        await emu.add_job(job_id="j-1", status="running", job_name="ImportGraph", related_graph="movies")
        await emu.add_job(job_id="j-2", status="running", job_name="ExportGraph", related_graph="movies")
        assert (await _poll(env))[0] == 0
        await emu.patch_job("j-1", status="cancelled")
        await emu.patch_job("j-2", status="Failed", fail_reason="disk full")

        code_text, text, _ = await _poll(env, dry_run=True)
        code, out, err = await _poll(env, as_json=True)
        again = await _poll(env, as_json=True)

    assert code_text == 0
    assert "unknown_outcome  movies  ImportGraph  j-1  (running → cancelled)" in text
    assert code == 0, err
    events = sorted((json.loads(line) for line in out.splitlines()), key=lambda e: e["job_id"])
    assert [(e["job_id"], e["kind"], e["status"], e["previous_status"]) for e in events] == [
        ("j-1", "unknown_outcome", "cancelled", "running"),
        ("j-2", "failed", "Failed", "running"),
    ]
    assert again[:2] == (0, "")


def test_poll_without_ges_settings_exits_2_and_says_how_to_fix_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith(("GES_", "HUAWEICLOUD_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GES_BOT_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    assert main(["poll", "--once"]) == 2
    assert "configuration problem" in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()


async def test_dry_run_before_any_database_exists_shows_a_first_start_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "never-created.db"
    async with run_emulator() as emu:
        await emu.add_job(job_id="j-old", status="failed", job_name="ImportGraph", related_graph="movies")
        code, out, err = await _poll(_env(emu, f"sqlite:///{path}"), as_json=True, dry_run=True)
    assert code == 0, err
    assert out == ""  # a first start records history silently (no backfill configured)
    assert "no database yet; dry run against an empty one" in err
    assert "baseline" in err
    assert not path.exists()


# --- the tick's budget ------------------------------------------------------------------------


def _history(n: int, prefix: str = "h") -> list[dict[str, Any]]:
    return [
        {
            "job_id": f"{prefix}{i:05d}",
            "status": "success" if i % 3 else "failed",
            "job_name": "ImportGraph",
            "related_graph": f"g{i % 7}",
            "begin_time": wire(T0 - timedelta(hours=30, minutes=-i)),
            "end_time": wire(T0 - timedelta(hours=29, minutes=-i)),
        }
        for i in range(n)
    ]


async def settle(w: World, poller: Poller, most: int = 40) -> Summary:
    """Tick (a minute apart) until a tick reads everything; every event of those ticks."""
    events: Summary = []
    for _ in range(most):
        report = await poller.tick()
        events += summary(report)
        await w.emu.advance(60)
        if not report.partial:
            return sorted(events)
    raise AssertionError(f"still partial after {most} ticks")


async def test_a_baseline_larger_than_the_tick_budget_continues_next_tick(sqlite_url: str) -> None:
    async with world(sqlite_url, page_size=10) as w:
        await w.emu.add_jobs(_history(250))
        poller = w.poller(max_pages=8)
        reports = []
        for _ in range(10):
            await w.emu.reset_stats()
            report = await poller.tick()
            assert await w.emu.list_calls() <= 8
            reports.append(report)
            await w.emu.advance(60)
            if not report.partial:
                break
        # 26 pages (the last one short) at 8 a tick.
        assert [r.partial for r in reports] == [True, True, True, False]
        assert all(r.baseline and r.events == () and r.outbox_ids == () for r in reports)
        # Every job of the history is recorded, silently; the project is baselined only now.
        assert (
            len(await w.store.job_ids_with_status(ALIAS, "success"))
            + len(await w.store.job_ids_with_status(ALIAS, "failed"))
            == 250
        )
        state = await w.store.poll_state(ALIAS)
        assert state is not None and state.baselined_at is not None
        # The terminal windows and the arrivals (250 jobs of the last day each) are read whole
        # once, over a few ticks, and then remembered: a steady tick is cheap again.
        assert await settle(w, poller) == []
        await w.emu.reset_stats()
        steady = await poller.tick()
        assert not steady.partial
        assert await w.emu.list_calls() == STEADY
        await w.job("j-new", "failed", related_graph="g3")
        assert await settle(w, poller) == [("j-new", "failed", None)]


async def test_a_job_count_of_a_million_is_cut_at_the_budget_and_loses_nothing(sqlite_url: str) -> None:
    async with world(sqlite_url, page_size=10) as w:
        await w.emu.add_jobs(_history(30))
        poller = w.poller(max_pages=12)
        assert not (await poller.tick()).partial
        await w.emu.advance(60)
        for i in range(35):
            await w.job(f"f{i:02d}", "failed", related_graph=f"n{i}")
        await w.job("r1", "running")
        # Every list answer now claims a million jobs (its pages hold the real ones).
        await w.emu.fault(job_count=1_000_000, count=-1)
        reported: list[str] = []
        for _ in range(8):
            await w.emu.reset_stats()
            report = await poller.tick()
            assert report.partial
            assert await w.emu.list_calls() <= 12
            reported += [e.job.job_id for e in report.events]
            await w.emu.advance(60)
        await w.emu.clear_faults()
        for _ in range(3):
            reported += [e.job.job_id for e in (await poller.tick()).events]
            await w.emu.advance(60)
        # Each failure once, none lost; then quiet and cheap again.
        assert sorted(reported) == [f"f{i:02d}" for i in range(35)]
        await w.emu.reset_stats()
        steady = await poller.tick()
        assert steady.events == () and not steady.partial
        assert await w.emu.list_calls() <= 6


async def test_the_tick_deadline_stops_asking_and_the_next_tick_finishes(sqlite_url: str) -> None:
    async with world(sqlite_url, page_size=10) as w:
        await w.emu.add_jobs(_history(100))
        # A clock on which each request to GES takes a second (no waiting involved): the
        # calibration takes its CALIBRATION seconds, then the baseline asks for page 1, then
        # batches of four while time is left (at 1 and 5 s after it began): nine requests, and
        # its six seconds are up.
        poller = w.poller(tick_deadline=CALIBRATION + 6, monotonic=lambda: float(w.client.requests_sent))
        first = await poller.tick()
        assert first.partial and first.baseline
        assert first.requests == CALIBRATION + 9
        reports = [first]
        while reports[-1].partial:
            reports.append(await poller.tick())
            assert len(reports) < 20
        assert len(await w.store.job_ids_with_status(ALIAS, "failed")) == 34
        assert await settle(w, poller) == []
        await w.job("j-new", "failed", related_graph="g3")
        assert await settle(w, poller) == [("j-new", "failed", None)]


async def test_a_cut_tick_and_a_failed_scan_are_told_apart_and_both_lose_nothing(sqlite_url: str) -> None:
    """The budget cutting a tick (partial: go on next tick, no error) and a scan failing on its own
    (degraded: an error recorded, the last success kept) in the same tick: both are reported, the
    failure is recorded for the ops watch and cleared by the next full tick, and every new failure
    is alerted exactly once."""
    async with world(sqlite_url, page_size=10) as w:
        await w.emu.add_jobs(_history(30))
        poller = w.poller(max_pages=8)
        assert await settle(w, poller) == []
        before = await w.store.poll_state(ALIAS)
        assert before is not None and before.last_error is None
        # A second calibration would take the fault meant for the waiting list.
        assert w.client.reading.decided
        for i in range(35):
            await w.job(f"f{i:02d}", "failed", related_graph=f"n{i}")
        # The tick's first request is the waiting list: it gets an answer that is no job list.
        await w.emu.fault(malformed=True)
        report = await poller.tick()
        assert report.partial
        assert report.degraded is not None and "status=waiting" in report.degraded
        state = await w.store.poll_state(ALIAS)
        assert state is not None
        assert state.consecutive_failures == 1
        assert state.last_error_kind == "unreadable"
        assert state.failing_since == report.at
        # No success: the next window still reaches back to the last one.
        assert state.last_success_at == before.last_success_at
        reported = summary(report)
        await w.emu.advance(60)
        reported += await settle(w, poller)
        assert sorted(reported) == [(f"f{i:02d}", "failed", None) for i in range(35)]
        state = await w.store.poll_state(ALIAS)
        assert state is not None
        assert (state.last_error, state.last_error_kind, state.failing_since, state.consecutive_failures) == (
            None,
            None,
            None,
            0,
        )
        assert state.last_success_at is not None and state.last_success_at > report.at


class _CountingStore:
    """The SqlStore, noting how many snapshots each ``commit_tick`` writes (what a tick held)."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self.committed: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def commit_tick(self, tick: TickResult) -> TickCommit:
        self.committed.append(len(tick.snapshots))
        return await self._store.commit_tick(tick)


async def test_a_baseline_commits_batch_by_batch_so_memory_holds_one_batch(sqlite_url: str) -> None:
    """A first start over a long history writes it a batch of pages at a time within the one tick:
    no commit (so no tick's working set) holds more than a batch of pages and the active jobs,
    however long the history."""
    async with world(sqlite_url, page_size=10) as w:
        await w.emu.add_jobs(_history(95))
        await w.job("r1", "running")
        store = _CountingStore(w.store)
        poller = Poller(
            w.emu.project_settings(alias=ALIAS),
            w.client,
            store,
            clock=w.emu.state.now,
            baseline_batch_pages=3,
        )
        report = await poller.tick()
        assert report.baseline and not report.partial and report.events == ()
        # 96 jobs, 10 a page, 3 pages a batch: four commits, none over 30 jobs + the active one.
        assert len(store.committed) == 4
        assert max(store.committed) <= 3 * 10 + 1
        assert sum(store.committed) >= 96
        state = await w.store.poll_state(ALIAS)
        assert state is not None and state.baselined_at is not None
        known = await w.store.job_ids_with_status(ALIAS, "success") | await w.store.job_ids_with_status(ALIAS, "failed")
        assert len(known) == 95
        assert (await w.store.active_snapshots(ALIAS)).keys() == {"r1"}


async def test_in_a_random_order_a_tick_never_reads_more_than_listing_the_window(sqlite_url: str) -> None:
    """A list with no order scatters each tick's new jobs over every page of every status: the
    searches could read more than one listing of the window (every status at once, what a naive
    poller reads). The tick then lists the window whole instead, and keeps to that for a while:
    never more requests than the naive listing, and every failure alerted once."""
    async with world(sqlite_url, page_size=10, order="random") as w:
        await w.emu.add_jobs(_history(150))
        poller = w.poller()
        assert await settle(w, poller) == []
        for _ in range(3):
            assert await settle(w, poller) == []
        new_failures = []
        costs, naive = [], []
        for t in range(6):
            for i in range(6):
                job_id = f"n{t}-{i}"
                await w.job(job_id, "failed" if i % 3 == 0 else "success", related_graph=f"g{i}")
                if i % 3 == 0:
                    new_failures.append((job_id, "failed", None))
            await w.emu.reset_stats()
            report = await poller.tick()
            costs.append(await w.emu.list_calls())
            assert not report.partial
            events = summary(report)
            await w.emu.reset_stats()
            listed = await w.client.list_jobs(ListQuery(start_date=(report.at - timedelta(days=1)).date()))
            naive.append(await w.emu.list_calls())
            assert len(listed.jobs) >= 150
            new_failures = [f for f in new_failures if f not in events]
            await w.emu.advance(60)
        assert new_failures == []
        # The first tick finds out (its probes, then the listing); the others list the window only.
        assert all(c <= n for c, n in zip(costs[1:], naive[1:], strict=True)), (costs, naive)
        assert costs[0] <= naive[0] + 4 * 4, (costs, naive)


# --- the fast lane ----------------------------------------------------------------------------


async def test_the_fast_lane_alerts_a_job_seen_running_in_one_request_and_the_scans_stay_cheap(
    sqlite_url: str,
) -> None:
    """A job seen running that fails is alerted by the next fast tick (the end of the arrivals
    window: one request), once; a job that began and ended between two fast ticks too. The next
    normal tick finds nothing more and costs a steady tick; a fast tick where nothing changed is one
    request and writes nothing."""
    async with world(sqlite_url, page_size=10) as w:
        await w.emu.add_jobs(_history(60))
        poller = w.poller()
        assert await settle(w, poller) == []
        await w.job("r1", "running", begin_time=wire(T0 + timedelta(minutes=1)))
        assert await settle(w, poller) == []
        await w.emu.reset_stats()
        quiet = await poller.fast_tick()
        assert not quiet.skipped and quiet.events == ()
        assert await w.emu.list_calls() == quiet.requests == 1
        state = await w.store.poll_state(ALIAS)

        await w.emu.patch_job("r1", status="failed", end_time=wire(await w.emu.now()))
        await w.job("quick", "failed", related_graph="g9")
        await w.emu.advance(5)
        await w.emu.reset_stats()
        fast = await poller.fast_tick()
        assert summary(fast) == [("quick", "failed", None), ("r1", "failed", "running")]
        assert fast.outbox_ids
        assert await w.emu.list_calls() == 1
        # Memories moved with it: the next normal tick reads nothing new, at a steady tick's cost.
        after = await w.store.poll_state(ALIAS)
        assert state is not None and after is not None and after.cursor != state.cursor
        await w.emu.advance(55)
        await w.emu.reset_stats()
        normal = await poller.tick()
        assert normal.events == ()
        assert await w.emu.list_calls() == STEADY


async def test_the_fast_lane_stands_aside_without_memory_or_under_another_replicas_lease(sqlite_url: str) -> None:
    async with world(sqlite_url, page_size=10) as w:
        await w.emu.add_jobs(_history(20))
        poller = w.poller()
        # Nothing baselined yet: no request.
        assert (await poller.fast_tick()).skipped
        assert await w.emu.list_calls() == 0
        assert await settle(w, poller) == []
        assert await settle(w, poller) == []
        other = w.poller("r2")
        await w.emu.reset_stats()
        assert (await other.fast_tick()).skipped
        assert await w.emu.list_calls() == 0
        assert not (await poller.fast_tick()).skipped


@pytest.mark.parametrize("order", ["asc", "desc", "random"])
async def test_a_window_larger_than_the_budget_loses_and_repeats_nothing_while_jobs_keep_coming(
    sqlite_url: str, order: str
) -> None:
    async with world(sqlite_url, page_size=10, order=order) as w:
        await w.emu.add_jobs(_history(200))
        poller = w.poller(max_pages=9)
        await settle(w, poller)  # the baseline, over several ticks
        expected: list[str] = []
        reported: list[str] = []
        # The terminal windows (200 jobs) are read whole over several ticks; meanwhile failures
        # keep landing (at the head in a descending order, shifting every page under the pass).
        for wave in range(12):
            for i in range(3):
                job_id = f"w{wave:02d}-{i}"
                await w.job(job_id, "failed", related_graph=f"n{wave}")
                expected.append(job_id)
            report = await poller.tick()
            reported += [e.job.job_id for e in report.events]
            await w.emu.advance(60)
        # A tick that read within its budget is not yet one that knows everything (a pass may just
        # have ended short of jobs that moved under it): give the passes a few ticks to finish.
        # (The arrivals' pass as well: in a random order, about 25 ticks at 9 pages.)
        for _ in range(30):
            reported += [e.job.job_id for e in (await poller.tick()).events]
            await w.emu.advance(60)
        assert sorted(reported) == sorted(expected)
        # And then the memory is whole: a quiet tick costs the six requests of the cheap path.
        await w.emu.reset_stats()
        quiet = await poller.tick()
        assert quiet.events == () and not quiet.partial
        assert await w.emu.list_calls() <= 6


# --- the cadence: which interval applies when ----------------------------------------------------

#: The settings' defaults: a poll every 60 s, the fast lane every 12 s, scans every 600 s while it
#: serves.
CADENCE = Cadence(poll_s=60.0, fast_s=12.0, scan_s=600.0)


@dataclass
class Look:
    """One scheduled call in :func:`run_cadence`: a poll or a fast look, when, and what it did."""

    kind: str
    at: datetime
    report: TickReport
    #: Seconds since the last success the poll state records, just after this look.
    age: float | None = None

    @property
    def scanned(self) -> bool:
        return self.kind == "poll" and not self.report.deferred and not self.report.skipped


async def run_cadence(
    w: World, poller: Poller, seconds: int, *, cadence: Cadence = CADENCE, start: int = 0
) -> list[Look]:
    """The runtime's two schedules on the emulated clock, ``start`` seconds into them:
    ``Poller.poll`` every poll interval and, with a fast interval, ``Poller.fast_tick`` every that
    many seconds (left out when a poll scanned at the same moment: it would wait for the scan,
    then find nothing new)."""
    looks: list[Look] = []
    for second in range(start + 1, start + seconds + 1):
        now = await w.emu.advance(1)
        scanned = False
        due: list[tuple[str, Callable[[], Awaitable[TickReport]]]] = []
        if second % cadence.poll_s == 0:
            due.append(("poll", poller.poll))
        if cadence.fast_s and second % cadence.fast_s == 0:
            due.append(("fast", poller.fast_tick))
        for kind, call in due:
            if kind == "fast" and scanned:
                continue
            report = await call()
            state = await w.store.poll_state(ALIAS)
            last = state.last_success_at if state is not None else None
            look = Look(kind, now, report, (now - last).total_seconds() if last is not None else None)
            looks.append(look)
            scanned = look.scanned
    return looks


def alerted(looks: list[Look]) -> list[tuple[str, str, str]]:
    """(job, event kind, which look) of every failure event."""
    return [
        (e.job.job_id, e.kind.value, look.kind)
        for look in looks
        for e in look.report.events
        if e.kind in (EventKind.FAILED, EventKind.PARTIALLY_FAILED)
    ]


async def test_while_the_fast_lane_serves_the_scans_wait_for_the_scan_interval(sqlite_url: str) -> None:
    """Defaults: the polls between two scans ask GES nothing (the fast lane saw every active job
    and every arrival), the scans come every 600 s, and a quiet look records the poll's success
    about once a poll interval so the project never looks staler than a poll interval and a fast
    look (GES_BOT_ANSWER_MAX_AGE, /healthz, the ops watch). Another replica defers nothing."""
    async with world(sqlite_url, page_size=10) as w:
        await w.emu.add_jobs(_history(60))
        poller = w.poller(cadence=CADENCE)
        assert await settle(w, poller) == []
        await w.job("r1", "running", begin_time=wire(await w.emu.now()))
        assert await settle(w, poller) == []
        await w.emu.reset_stats()
        looks = await run_cadence(w, poller, 25 * 60)
        fast = [look for look in looks if look.kind == "fast"]
        polls = [look for look in looks if look.kind == "poll"]
        scans = [look.at for look in polls if look.scanned]
        assert all(look.report.served and look.report.requests == 1 for look in fast)
        assert all(look.report.deferred and look.report.requests == 0 for look in polls if not look.scanned)
        # Every 600 s (the emulated clock also moves with the wall clock: a few seconds more).
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(scans)]
        assert len(gaps) == 1 and 600 <= gaps[0] < 600 + CADENCE.poll_s / 2, gaps
        assert all(look.report.requests == STEADY for look in polls if look.scanned)
        assert await w.emu.list_calls() == len(fast) + STEADY * len(scans)
        # Freshness: after every look the last recorded success is less than a poll interval and
        # a fast interval old (a quiet look records one when the last is a poll interval old).
        ages = [look.age for look in looks]
        assert all(age is not None and age < CADENCE.poll_s + CADENCE.fast_s for age in ages), ages
        # Replicas still poll the project once: another one is turned away by the lease, and
        # defers nothing of its own.
        other = w.poller("r2", cadence=CADENCE)
        report = await other.poll()
        assert report.skipped and not report.deferred


async def test_a_job_that_starts_and_ends_between_two_fast_looks_is_alerted_by_the_next_one(sqlite_url: str) -> None:
    """Between two fast looks: a job seen running fails, and a job that was never seen running
    begins and fails. The next look alerts both (a new job sits at the end of the arrivals window:
    the look reads there whatever its status), each once; the scan that follows finds nothing
    more."""
    async with world(sqlite_url, page_size=10) as w:
        await w.emu.add_jobs(_history(60))
        poller = w.poller(cadence=CADENCE)
        await settle(w, poller)
        await w.job("r1", "running", begin_time=wire(await w.emu.now()))
        await settle(w, poller)
        before = await run_cadence(w, poller, 30)  # two looks: the fast lane serves
        assert [look.report.served for look in before if look.kind == "fast"] == [True, True]
        # Six seconds after the last look, six before the next.
        now = await w.emu.now()
        await w.emu.patch_job("r1", status="failed", end_time=wire(now))
        await w.job(
            "quick", "failed", related_graph="g9", begin_time=wire(now - timedelta(seconds=3)), end_time=wire(now)
        )
        looks = await run_cadence(w, poller, 12 * 60, start=30)
        first = next(look for look in looks if look.report.events)
        assert first.kind == "fast" and (first.at - now).total_seconds() < CADENCE.fast_s, (first, now)
        assert sorted(alerted(looks)) == [("quick", "failed", "fast"), ("r1", "failed", "fast")]
        assert any(look.scanned for look in looks)


@pytest.mark.parametrize(
    ("order", "cadence"),
    [("desc", CADENCE), ("random", CADENCE), ("asc", replace(CADENCE, fast_s=0.0))],
    ids=["newest-first", "no-order", "fast-lane-off"],
)
async def test_where_the_fast_lane_cannot_serve_every_poll_scans(sqlite_url: str, order: str, cadence: Cadence) -> None:
    """A GES listing newest first or in no order (the fast lane's page is not where new jobs land),
    or the fast lane off (GES_BOT_FAST_INTERVAL=0): no poll defers its scans, so a failure is
    alerted by the next poll, within a poll interval, as before the fast lane."""
    async with world(sqlite_url, page_size=10, order=order) as w:
        await w.emu.add_jobs(_history(60))
        poller = w.poller(cadence=cadence)
        await settle(w, poller)
        await settle(w, poller)
        looks: list[Look] = []
        for minute in range(6):
            # Jobs keep arriving (where the order puts them); one that runs, then fails.
            await w.job(f"n{minute}", "success", related_graph="g8")
            await w.job(f"r{minute}", "running", begin_time=wire(await w.emu.now()))
            looks += await run_cadence(w, poller, 20, cadence=cadence, start=60 * minute)
            ended = await w.emu.now()
            await w.emu.patch_job(f"r{minute}", status="failed", end_time=wire(ended))
            more = await run_cadence(w, poller, 40, cadence=cadence, start=60 * minute + 20)
            failures = [(look.at - ended).total_seconds() for look in more if look.report.events]
            assert failures and failures[0] <= cadence.poll_s, failures
            looks += more
        polls = [look for look in looks if look.kind == "poll"]
        assert len(polls) == 6 and all(look.scanned for look in polls)
        assert not any(look.report.served for look in looks)
        assert sorted(j for j, _, _ in alerted(looks)) == [f"r{m}" for m in range(6)]


async def test_an_active_job_the_fast_lane_cannot_reach_keeps_the_poll_cadence(sqlite_url: str) -> None:
    """A job running since before the arrivals window (three days) is on no page the fast lane
    reads: it does not serve while that job runs (one look reads back for it once, then not until
    the next scan), every poll scans and the job's end is alerted within a poll interval; once it
    ended the fast lane serves again and the scans wait."""
    async with world(sqlite_url, page_size=10) as w:
        w.stuck_after = timedelta(days=30)
        await w.job("j-long", begin_time=wire(T0 - timedelta(days=3)))
        await w.emu.add_jobs(_history(60))
        poller = w.poller(cadence=CADENCE)
        await settle(w, poller)
        await settle(w, poller)
        looks = await run_cadence(w, poller, 5 * 60)
        polls = [look for look in looks if look.kind == "poll"]
        fast = [look for look in looks if look.kind == "fast"]
        assert polls and all(look.scanned for look in polls)
        assert not any(look.report.served for look in fast)
        # One read back after each scan at most: the others are one request.
        assert sum(look.report.requests for look in fast) <= len(fast) + len(polls) + 1
        ended = await w.emu.now()
        await w.emu.patch_job("j-long", status="failed", end_time=wire(ended))
        looks = await run_cadence(w, poller, 60, start=300)
        assert alerted(looks) == [("j-long", "failed", "poll")]
        # (The emulated clock also moves with the wall clock: a fraction of a second more.)
        assert all((look.at - ended).total_seconds() < CADENCE.poll_s + 1 for look in looks if look.report.events)
        looks = await run_cadence(w, poller, 5 * 60, start=360)
        assert [look.report.deferred for look in looks if look.kind == "poll"] == [True] * 5


async def test_a_fast_look_that_fails_makes_the_next_poll_scan(sqlite_url: str) -> None:
    """GES failing a fast look: the fast lane stands for nothing until a scan succeeds, so the next
    poll scans (and, GES still failing, records the error the ops watch counts from)."""
    async with world(sqlite_url, page_size=10) as w:
        await w.emu.add_jobs(_history(60))
        poller = w.poller(cadence=CADENCE)
        await settle(w, poller)
        await settle(w, poller)
        looks = await run_cadence(w, poller, 2 * 60)
        assert [look.report.deferred for look in looks if look.kind == "poll"] == [True, True]
        await w.emu.fault(status=503, count=2, error_code="GES.7005", error_msg="engine unavailable")
        await w.emu.advance(12)
        with pytest.raises(JobCenterError):
            await poller.fast_tick()
        await w.emu.advance(12)
        assert await run_tick(poller) is None  # the poll scanned, and failed
        state = await w.store.poll_state(ALIAS)
        assert state is not None and state.consecutive_failures == 1
        # The error stands: the fast lane stays out, the polls keep scanning until one succeeds.
        assert (await poller.fast_tick()).skipped
        await w.emu.advance(60)
        report = await run_tick(poller)
        assert report is not None and not report.deferred and report.requests
        looks = await run_cadence(w, poller, 2 * 60)
        assert [look.report.deferred for look in looks if look.kind == "poll"] == [True, True]


async def test_a_job_that_gets_stuck_is_reported_by_a_look_once_while_the_scans_wait(sqlite_url: str) -> None:
    async with world(sqlite_url, page_size=10) as w:
        w.stuck_after = timedelta(minutes=5)
        await w.emu.add_jobs(_history(60))
        poller = w.poller(cadence=CADENCE)
        await settle(w, poller)
        begun = await w.emu.now()
        await w.job("r1", "running", begin_time=wire(begun))
        await settle(w, poller)
        looks = await run_cadence(w, poller, 12 * 60)
        stuck = [(look.kind, look.at) for look in looks for e in look.report.events if e.kind is EventKind.STUCK]
        assert len(stuck) == 1 and stuck[0][0] == "fast"
        assert (stuck[0][1] - begun).total_seconds() < 5 * 60 + CADENCE.fast_s + 1
        assert all(look.report.served for look in looks if look.kind == "fast")
