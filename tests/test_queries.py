"""ges_bot.slackapp.queries against the GES emulator and a real SQLite store: the exact jobs a
question gets, whatever way GES reads its date filter, what it costs on the GES API, and the
fallback to snapshots when GES is unreachable."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr

from ges_bot.config import Config, ProjectSettings, load_settings
from ges_bot.domain import Job
from ges_bot.emulator.settings import AkSk
from ges_bot.errors import ApiError, AuthError, QueryError, ResponseError, StoreError, TransportError
from ges_bot.jobcenter.client import JobCenterClient
from ges_bot.jobcenter.reading import ASSUMED
from ges_bot.services import Services
from ges_bot.slackapp.commands import JobDetail, Query, TimeRange
from ges_bot.slackapp.fairuse import LiveQueryLimiter
from ges_bot.slackapp.queries import (
    JobLookup,
    JobsAnswer,
    QueryProblem,
    QueryRunner,
    SourceKind,
    in_range,
    is_unreachable,
)
from ges_bot.store import SqlStore, open_store
from ges_bot.store.api import JobQuery, PollState, Snapshot, TickResult
from tests.support.clocks import Seconds
from tests.support.emulator import EmulatorHandle, run_emulator

NOW = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
UTC_ZONE = ZoneInfo("UTC")
ALIAS = "prod"
OTHER_PROJECT = "fedcba9876543210fedcba9876543210"
FAILED_TODAY = Query(statuses=frozenset({"failed"}), range=TimeRange.today())


def wire_time(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass
class World:
    emu: EmulatorHandle
    store: SqlStore
    client: JobCenterClient
    services: Services
    runner: QueryRunner

    async def job(self, job_id: str, status: str, ended: datetime | None, began: datetime, **more: Any) -> None:
        await self.emu.add_job(
            job_id=job_id,
            status=status,
            job_name=more.pop("job_name", "ImportGraph"),
            related_graph=more.pop("related_graph", "movies"),
            begin_time=wire_time(began),
            end_time=wire_time(ended) if ended else None,
            **more,
        )

    async def remember(self, *jobs: Job, at: datetime) -> None:
        snapshots = [Snapshot(project=ALIAS, job=j, first_seen=at, last_seen=at, last_change=at) for j in jobs]
        await self.store.commit_tick(
            TickResult(project=ALIAS, at=at, snapshots=snapshots, events=[], outcomes=[], deliveries=[])
        )


def ids(answer: JobsAnswer | QueryProblem) -> list[str]:
    assert isinstance(answer, JobsAnswer), answer
    return [f.job.job_id for f in answer.jobs]


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated database; each test starts from a copy (migrating takes a while)."""
    path = tmp_path_factory.mktemp("db") / "template.db"

    async def migrate() -> None:
        await (await open_store(f"sqlite:///{path}")).close()

    asyncio.run(migrate())
    return path


@pytest.fixture(autouse=True)
def _fresh_db(template_db: Path, tmp_path: Path) -> None:
    shutil.copyfile(template_db, tmp_path / "q.db")


@contextlib.asynccontextmanager
async def world(
    tmp_path: Path, *, live_timeout_s: float = 5.0, calibrated: bool = True, **emulator: Any
) -> AsyncIterator[World]:
    """``calibrated``: the client follows the documented reading, as after the poller calibrated it
    against the emulator's defaults; without, the first question calibrates it."""
    async with run_emulator(**emulator) as emu:
        store = await open_store(f"sqlite:///{tmp_path / 'q.db'}", migrate=False)
        project = emu.project_settings(alias=ALIAS)
        client = JobCenterClient(project, max_retries=1, backoff_base=0.01, backoff_cap=0.05, timeout=5, page_size=100)
        if calibrated:
            client.use_reading(ASSUMED)
        config = Config(settings=load_settings({}), projects=(project,), subscriptions=())
        services = Services(config=config, store=store, clients={ALIAS: client}, clock=lambda: NOW)
        try:
            yield World(emu, store, client, services, QueryRunner(services, live_timeout_s=live_timeout_s))
        finally:
            await client.aclose()
            await store.close()


# -- pure parts -------------------------------------------------------------------------------


def test_a_job_is_placed_at_its_end_or_its_begin_while_it_runs() -> None:
    start, end = NOW - timedelta(hours=1), NOW
    ended_inside = Job("a", "failed", begin_time=start - timedelta(days=3), end_time=start + timedelta(minutes=1))
    ended_before = Job("b", "failed", begin_time=start + timedelta(minutes=1), end_time=None)
    assert in_range(ended_inside, start, end)
    assert in_range(ended_before, start, end)  # running: placed at its begin time
    assert not in_range(Job("c", "failed", begin_time=start, end_time=end), start, end)  # end is exclusive
    assert in_range(Job("d", "failed", end_time=start), start, end)  # start is inclusive
    assert not in_range(Job("e", "failed"), start, end)  # no time at all: in no range
    assert in_range(Job("e", "failed"), None, None)


@pytest.mark.parametrize(
    ("error", "unreachable"),
    [
        (TimeoutError(), True),
        (TransportError("refused"), True),
        (ResponseError("not JSON"), True),
        (ApiError(503, "GES.7005", "engine unavailable"), True),
        (ApiError(429, None, None), True),
        (ApiError(408, "GES.7005", None), True),
        (AuthError(401, "APIG.0301", "token expired"), False),
        (ApiError(400, "GES.0001", "bad parameter"), False),
        (QueryError("bad date"), False),
        (ValueError("a bug"), False),
    ],
)
def test_what_counts_as_unreachable(error: BaseException, unreachable: bool) -> None:
    assert is_unreachable(error) is unreachable


# -- live answers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "zone"),
    [("begin_time", "UTC"), ("end_time", "UTC"), ("begin_time", "+14:00"), ("end_time", "-12:00")],
)
async def test_today_in_berlin_whatever_way_ges_reads_its_date_filter(tmp_path: Path, field: str, zone: str) -> None:
    async with world(tmp_path, date_filter_field=field, date_filter_tz=zone) as w:
        # Berlin's 2026-03-11 is [23:00 UTC on the 10th, 23:00 UTC on the 11th).
        await w.job("in-1", "failed", NOW - timedelta(minutes=29), NOW - timedelta(minutes=50))  # 23:01
        await w.job("in-2", "failed", NOW + timedelta(hours=20), NOW + timedelta(hours=19))  # tomorrow UTC
        await w.job("out-1", "failed", NOW - timedelta(minutes=31), NOW - timedelta(minutes=50))  # 22:59
        await w.job("out-2", "failed", NOW + timedelta(hours=24), NOW + timedelta(hours=23))  # after
        await w.job("other-status", "success", NOW - timedelta(minutes=5), NOW - timedelta(minutes=6))
        assert ids(await w.runner.jobs(FAILED_TODAY, now=NOW, zone=BERLIN)) == ["in-2", "in-1"]


async def test_each_status_is_its_own_request_and_they_run_concurrently(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.job("f", "failed", NOW - timedelta(minutes=5), NOW - timedelta(minutes=9))
        await w.job("p", "partiallyFailed", NOW - timedelta(minutes=4), NOW - timedelta(minutes=9))
        await w.job("r", "running", None, NOW - timedelta(minutes=3))
        await w.job("s", "success", NOW - timedelta(minutes=2), NOW - timedelta(minutes=9))
        await w.emu.reset_stats()
        await w.emu.fault(latency_ms=600, count=-1)
        query = Query(statuses=frozenset({"failed", "partiallyFailed", "running"}), range=TimeRange.today())
        started = time.perf_counter()
        answer = await w.runner.jobs(query, now=NOW, zone=ZoneInfo("UTC"))
        elapsed = time.perf_counter() - started
        assert ids(answer) == ["r", "p", "f"]
        assert elapsed < 1.5  # three 0.6 s requests, side by side
        recent = [str(r) for r in (await w.emu.stats())["recent"]]
        assert sum("status=failed" in r for r in recent) == 1
        assert sum("status=partiallyFailed" in r for r in recent) == 1
        assert sum("status=running" in r for r in recent) == 1
        assert all("start_time=2026-03-09" in r and "end_time=2026-03-11" in r for r in recent), recent


async def test_identical_questions_at_the_same_moment_share_one_listing(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.job("f", "failed", NOW - timedelta(minutes=5), NOW - timedelta(minutes=9))
        await w.emu.reset_stats()
        await w.emu.fault(latency_ms=300, count=-1)
        answers = await asyncio.gather(*(w.runner.jobs(FAILED_TODAY, now=NOW, zone=BERLIN) for _ in range(20)))
        assert [ids(a) for a in answers] == [["f"]] * 20
        assert await w.emu.list_calls() == 1
        # Nothing is kept once answered: the next question asks GES again.
        assert ids(await w.runner.jobs(FAILED_TODAY, now=NOW, zone=BERLIN)) == ["f"]
        assert await w.emu.list_calls() == 2


async def test_a_shared_listing_outlives_an_asker_who_gives_up(tmp_path: Path) -> None:
    async with world(tmp_path, live_timeout_s=0.3) as w:
        patient = QueryRunner(w.services, live_timeout_s=5)
        patient._shared = w.runner._shared  # one bot: the same in-flight listings
        await w.job("f", "failed", NOW - timedelta(minutes=5), NOW - timedelta(minutes=9))
        await w.emu.fault(latency_ms=800, count=-1)
        hasty, calm = await asyncio.gather(
            w.runner.jobs(FAILED_TODAY, now=NOW, zone=BERLIN), patient.jobs(FAILED_TODAY, now=NOW, zone=BERLIN)
        )
        assert isinstance(hasty, JobsAnswer)
        assert [s.kind for s in hasty.sources] == [SourceKind.SNAPSHOTS]
        assert ids(calm) == ["f"]
        assert await w.emu.list_calls() == 1


async def test_running_without_a_range_sends_no_dates(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.job("old-run", "running", None, NOW - timedelta(days=9))
        await w.emu.reset_stats()
        answer = await w.runner.jobs(Query(statuses=frozenset({"running"})), now=NOW, zone=BERLIN)
        assert ids(answer) == ["old-run"]
        recent = str((await w.emu.stats())["recent"])
        assert "start_time" not in recent
        assert "end_time" not in recent


async def test_graph_glob_and_type_filter_locally(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        at = NOW - timedelta(minutes=10)
        await w.job("a", "failed", at, at, related_graph="prod-a", job_name="ImportGraph")
        await w.job("b", "failed", at, at, related_graph="prod-b", job_name="ExportGraph")
        await w.job("c", "failed", at, at, related_graph="staging", job_name="ImportGraph")
        query = Query(statuses=frozenset({"failed"}), range=TimeRange.today(), graph="prod-*", job_name="ImportGraph")
        assert ids(await w.runner.jobs(query, now=NOW, zone=ZoneInfo("UTC"))) == ["a"]
        exact = Query(statuses=frozenset({"failed"}), range=TimeRange.today(), graph="staging")
        assert ids(await w.runner.jobs(exact, now=NOW, zone=ZoneInfo("UTC"))) == ["c"]


async def test_unknown_project_lists_the_configured_ones(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        problem = await w.runner.jobs(
            Query(statuses=frozenset({"failed"}), project="nope"), now=NOW, zone=ZoneInfo("UTC")
        )
        assert problem == QueryProblem("There is no GES project 'nope'; the bot watches: prod.", ("prod",))


async def test_several_projects_are_asked_and_merged_newest_first(tmp_path: Path) -> None:
    key = AkSk("EMULATORSECONDAK00002", "EmulatorSecondSecretKey0123456789abcdefg", ("*",))
    async with world(tmp_path, extra_aksk=(key,)) as w:
        staging = ProjectSettings(
            alias="staging",
            project_id=OTHER_PROJECT,
            endpoint=w.emu.url,
            region=None,
            auth="aksk",
            ak=SecretStr(key.ak),
            sk=SecretStr(key.sk),
        )
        async with JobCenterClient(staging, max_retries=0) as second:
            services = Services(
                config=Config(
                    settings=load_settings({}),
                    projects=(w.emu.project_settings(alias=ALIAS), staging),
                    subscriptions=(),
                ),
                store=w.store,
                clients={ALIAS: w.client, "staging": second},
                clock=lambda: NOW,
            )
            await w.job("p1", "failed", NOW - timedelta(minutes=9), NOW - timedelta(minutes=19))
            await w.emu.add_job(
                job_id="s1",
                project_id=OTHER_PROJECT,
                status="failed",
                related_graph="movies",
                begin_time=wire_time(NOW - timedelta(minutes=18)),
                end_time=wire_time(NOW - timedelta(minutes=8)),
            )
            answer = await QueryRunner(services).jobs(FAILED_TODAY, now=NOW, zone=ZoneInfo("UTC"))
            assert isinstance(answer, JobsAnswer)
            assert [(f.project, f.job.job_id) for f in answer.jobs] == [("staging", "s1"), ("prod", "p1")]
            assert [s.kind for s in answer.sources] == [SourceKind.LIVE, SourceKind.LIVE]
            only = Query(statuses=frozenset({"failed"}), range=TimeRange.today(), project="staging")
            assert ids(await QueryRunner(services).jobs(only, now=NOW, zone=ZoneInfo("UTC"))) == ["s1"]


# -- when GES is not there ---------------------------------------------------------------------


async def test_unreachable_ges_is_answered_from_snapshots(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        polled = NOW - timedelta(minutes=7)
        long_job = Job(
            "long", "failed", graph="movies", begin_time=NOW - timedelta(days=2), end_time=NOW - timedelta(hours=1)
        )
        await w.remember(
            long_job,
            Job(
                "yesterday",
                "failed",
                graph="movies",
                begin_time=NOW - timedelta(days=1, hours=2),
                end_time=NOW - timedelta(days=1),
            ),
            Job(
                "ok", "success", graph="movies", begin_time=NOW - timedelta(hours=2), end_time=NOW - timedelta(hours=1)
            ),
            at=polled,
        )
        await w.emu.fault(status=503, count=-1)
        answer = await w.runner.jobs(FAILED_TODAY, now=NOW, zone=ZoneInfo("UTC"))
        assert ids(answer) == ["long"]  # began two days ago, ended today: in range by its end
        assert isinstance(answer, JobsAnswer)
        (source,) = answer.sources
        assert source.kind is SourceKind.SNAPSHOTS
        assert source.as_of == polled
        assert source.reason is not None
        assert source.reason.startswith("GES (project prod) is unreachable: GES answered HTTP 503")


@pytest.mark.parametrize(
    ("fault", "said"),
    [({"huge_bytes": 100 << 20}, "is too large"), ({"nested": 200_000}, "nested too deep")],
    ids=["100-MB-answer", "deeply-nested-JSON"],
)
async def test_an_unusable_answer_is_answered_from_snapshots(tmp_path: Path, fault: dict[str, int], said: str) -> None:
    async with world(tmp_path) as w:
        ended = Job(
            "f1", "failed", graph="movies", begin_time=NOW - timedelta(hours=2), end_time=NOW - timedelta(hours=1)
        )
        await w.remember(ended, at=NOW - timedelta(minutes=3))
        await w.emu.fault(**fault, count=-1)
        await w.emu.reset_stats()
        answer = await w.runner.jobs(FAILED_TODAY, now=NOW, zone=ZoneInfo("UTC"))
        assert ids(answer) == ["f1"]
        assert isinstance(answer, JobsAnswer)
        (source,) = answer.sources
        assert source.kind is SourceKind.SNAPSHOTS
        assert source.reason is not None and said in source.reason
        # Not retried: the same answer would come again.
        assert await w.emu.list_calls() == 1


async def test_ges_too_slow_is_unreachable(tmp_path: Path) -> None:
    async with world(tmp_path, live_timeout_s=0.3) as w:
        await w.emu.fault(latency_ms=1000, count=-1)
        started = time.perf_counter()
        answer = await w.runner.jobs(FAILED_TODAY, now=NOW, zone=ZoneInfo("UTC"))
        assert time.perf_counter() - started < 1.5
        assert isinstance(answer, JobsAnswer)
        assert answer.sources[0].reason == "GES (project prod) did not answer within 0.3s"
        assert answer.sources[0].as_of is None


class BrokenStore:
    """A store whose database is gone (our own interface, hand-written)."""

    async def query_jobs(self, query: JobQuery) -> list[Snapshot]:
        raise StoreError("database unavailable")

    async def poll_state(self, project: str) -> PollState | None:
        raise StoreError("database unavailable")

    async def close(self) -> None:
        return None


async def test_ges_and_database_both_down_is_a_sentence(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        w.services.store = BrokenStore()  # type: ignore[assignment]
        await w.emu.fault(status=503, count=-1)
        answer = await w.runner.jobs(FAILED_TODAY, now=NOW, zone=ZoneInfo("UTC"))
        assert isinstance(answer, JobsAnswer)
        (source,) = answer.sources
        assert source.kind is SourceKind.ERROR
        assert source.reason is not None
        assert source.reason.endswith("and the bot's own records could not be read either")


@pytest.mark.parametrize(
    ("fault", "sentence"),
    [
        ({"status": 401}, "GES refused the bot's credentials for project prod"),
        (
            {"status": 400, "error_code": "GES.0001", "error_msg": "incorrect parameter"},
            "GES (project prod) rejected the query: GES answered HTTP 400 GES.0001: incorrect parameter",
        ),
    ],
)
async def test_errors_that_are_not_about_reachability_are_sentences(
    tmp_path: Path, fault: dict[str, Any], sentence: str
) -> None:
    async with world(tmp_path) as w:
        await w.remember(Job("x", "failed", end_time=NOW - timedelta(minutes=1)), at=NOW)
        await w.emu.fault(count=-1, **fault)
        answer = await w.runner.jobs(FAILED_TODAY, now=NOW, zone=ZoneInfo("UTC"))
        assert isinstance(answer, JobsAnswer)
        assert answer.jobs == ()  # not silently answered from snapshots
        (source,) = answer.sources
        assert source.kind is SourceKind.ERROR
        assert source.reason is not None
        assert source.reason.startswith(sentence)


# -- one job ---------------------------------------------------------------------------------


async def test_a_job_unknown_to_the_store_is_found_without_reading_every_page(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        jobs = [
            {"job_id": f"j{i:04d}", "status": "success", "begin_time": wire_time(NOW - timedelta(minutes=3 * i))}
            for i in range(1000)
        ]
        await w.emu.add_jobs(jobs)
        before = w.client.requests_sent
        # The emulator lists the oldest first: j0999 is on the first page.
        found = await w.runner.job(JobDetail("j0999"))
        assert isinstance(found, JobLookup)
        assert found.job.job_id == "j0999"
        assert found.source.kind is SourceKind.LIVE
        assert w.client.requests_sent - before == 1  # the first page had it; nothing else was fetched
        missing = await w.runner.job(JobDetail("nope"))
        assert missing == QueryProblem(
            "No job nope in GES project prod since 2026-03-07. Check the id "
            "(older jobs are found only if the bot has seen them)."
        )


async def test_an_unknown_job_is_looked_for_in_a_recent_window_only(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.job("ancient", "failed", NOW - timedelta(days=40), NOW - timedelta(days=41))
        await w.job("recent", "failed", NOW - timedelta(hours=1), NOW - timedelta(hours=2))
        await w.emu.reset_stats()
        problem = await w.runner.job(JobDetail("ancient"))
        assert problem == QueryProblem(
            "No job ancient in GES project prod since 2026-03-07. Check the id "
            "(older jobs are found only if the bot has seen them)."
        )
        (request,) = [str(r) for r in (await w.emu.stats())["recent"]]
        assert "start_time=2026-03-07" in request
        # A job the bot has seen is found whatever its age: its snapshot says where to look.
        await w.remember(Job("ancient", "running", graph="movies", begin_time=NOW - timedelta(days=41)), at=NOW)
        found = await w.runner.job(JobDetail("ancient"))
        assert isinstance(found, JobLookup) and found.job.status == "failed"


async def _add_3000_jobs(w: World) -> None:
    """3,000 successes, one every 20 s back from ``NOW``: more than one lookup may read."""
    await w.emu.add_jobs(
        [
            {"job_id": f"j{i:05d}", "status": "success", "begin_time": wire_time(NOW - timedelta(seconds=20 * i))}
            for i in range(3000)
        ]
    )


async def test_an_unknown_job_search_reads_a_bounded_number_of_pages_and_says_so(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await _add_3000_jobs(w)
        await w.emu.reset_stats()
        problem = await w.runner.job(JobDetail("nope"))
        assert isinstance(problem, QueryProblem)
        assert problem.message.startswith(
            "Job nope is not among the jobs one lookup reads of those GES lists since 2026-03-07: "
            "prod (the first 1,000 of 3,000)."
        )
        assert "graph <name>" in problem.message
        # Ten pages, plus at most the pages already in flight when the tenth landed.
        assert await w.emu.list_calls() <= 10 + 4


async def test_identical_lookups_at_the_same_moment_share_one_search(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await _add_3000_jobs(w)
        await w.emu.reset_stats()
        # A slow GES, so that the twenty are in flight together (as a crowd clicking at once).
        await w.emu.fault(latency_ms=500, count=-1)
        answers = await asyncio.gather(*(w.runner.job(JobDetail("nope")) for _ in range(20)))
        assert len(set(answers)) == 1
        assert await w.emu.list_calls() <= 10 + 4


async def test_past_the_fair_use_limit_snapshots_answer_and_say_when_live_answers_resume(tmp_path: Path) -> None:
    clock = Seconds(1000.0)
    async with world(tmp_path) as w:
        w.runner.limiter = LiveQueryLimiter(per_user=2, overall=3, clock=clock)
        await w.job("f1", "failed", NOW - timedelta(hours=1), NOW - timedelta(hours=2))
        await w.remember(
            Job("f1", "failed", graph="movies", begin_time=NOW - timedelta(hours=2), end_time=NOW - timedelta(hours=1)),
            at=NOW,
        )
        await w.emu.reset_stats()
        for _ in range(2):
            answer = await w.runner.jobs(FAILED_TODAY, now=NOW, zone=UTC_ZONE, user="U1")
            assert isinstance(answer, JobsAnswer) and not answer.snapshot_sources
        clock.now += 10
        slow = await w.runner.jobs(FAILED_TODAY, now=NOW, zone=UTC_ZONE, user="U1")
        assert isinstance(slow, JobsAnswer)
        assert ids(slow) == ["f1"]
        [source] = slow.snapshot_sources
        assert source.reason == (
            "Slow down — you have asked GES 2 times in the last minute; live answers again in 50 s"
        )
        # The same person's job lookups: the snapshot, or a sentence, never GES.
        looked = await w.runner.job(JobDetail("f1"), user="U1")
        assert isinstance(looked, JobLookup) and looked.source.kind is SourceKind.SNAPSHOTS
        unknown = await w.runner.job(JobDetail("nope"), user="U1")
        assert unknown == QueryProblem(
            "Slow down — you have asked GES 2 times in the last minute; live answers again in 50 s. "
            "The bot has no record of job nope yet."
        )
        assert await w.emu.list_calls() == 2
        # Someone else still gets a live answer, until everyone's limit is reached.
        assert not (await w.runner.jobs(FAILED_TODAY, now=NOW, zone=UTC_ZONE, user="U2")).snapshot_sources  # type: ignore[union-attr]
        crowd = await w.runner.jobs(FAILED_TODAY, now=NOW, zone=UTC_ZONE, user="U3")
        assert isinstance(crowd, JobsAnswer)
        assert crowd.snapshot_sources[0].reason is not None
        assert crowd.snapshot_sources[0].reason.startswith("Slow down — GES has been asked 3 times by everyone")
        # A minute after the first question, U1 asks live again.
        clock.now += 51
        again = await w.runner.jobs(FAILED_TODAY, now=NOW, zone=UTC_ZONE, user="U1")
        assert isinstance(again, JobsAnswer) and not again.snapshot_sources


async def test_a_known_job_is_asked_by_graph_and_date(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        began = NOW - timedelta(hours=30)
        await w.remember(Job("k1", "running", graph="movies", begin_time=began), at=NOW - timedelta(hours=1))
        await w.job("k1", "failed", NOW - timedelta(hours=2), began, fail_reason="boom")
        await w.emu.reset_stats()
        found = await w.runner.job(JobDetail("k1"))
        assert isinstance(found, JobLookup)
        assert (found.job.status, found.job.fail_reason, found.source.kind) == ("failed", "boom", SourceKind.LIVE)
        (request,) = [str(r) for r in (await w.emu.stats())["recent"]]
        assert "graph_name=movies" in request
        assert "start_time=2026-03-08" in request  # one day before it began (day granularity, unknown zone)


async def test_a_known_job_gone_from_ges_shows_its_snapshot(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        seen_at = NOW - timedelta(hours=3)
        await w.remember(Job("g1", "failed", graph="movies", begin_time=NOW - timedelta(hours=4)), at=seen_at)
        found = await w.runner.job(JobDetail("g1"))
        assert isinstance(found, JobLookup)
        assert found.source.kind is SourceKind.SNAPSHOTS
        assert found.source.reason == "GES no longer lists this job"
        assert found.source.as_of == seen_at
        await w.emu.fault(status=503, count=-1)
        found = await w.runner.job(JobDetail("g1"))
        assert isinstance(found, JobLookup)
        assert found.source.reason is not None
        assert "unreachable" in found.source.reason


async def test_an_unknown_job_while_ges_is_down(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.emu.fault(status=503, count=-1)
        problem = await w.runner.job(JobDetail("zzz"))
        assert isinstance(problem, QueryProblem)
        assert problem.message.startswith("The bot has no record of job zzz, and GES could not be searched:")


async def test_a_three_day_import_that_failed_today_is_in_the_live_answer(tmp_path: Path) -> None:
    """GES filters dates on begin time here, so its own answer lacks the long job; the poller followed
    it to its end, and its snapshot completes the live answer."""
    from ges_bot.jobcenter.wire import parse_job

    ended = NOW - timedelta(hours=2)
    began = NOW - timedelta(days=3)
    async with world(tmp_path, date_filter_field="begin_time") as w:
        await w.job("long-import", "failed", ended=ended, began=began, fail_reason="disk full")
        await w.job("short-import", "failed", ended=NOW - timedelta(hours=1), began=NOW - timedelta(hours=1, minutes=5))
        [wire] = [j for j in await w.emu.jobs() if j["job_id"] == "long-import"]
        await w.remember(parse_job(wire), at=ended)
        answer = await w.runner.jobs(FAILED_TODAY, now=NOW, zone=ZoneInfo("UTC"))
    assert ids(answer) == ["short-import", "long-import"]
    assert isinstance(answer, JobsAnswer)
    assert [s.kind for s in answer.sources] == [SourceKind.LIVE]


# -- every reading of the job list ------------------------------------------------------------


@pytest.mark.parametrize(
    "reading",
    [
        {"offset_unit": "page0"},
        {"offset_unit": "page1"},
        {"job_count": "page"},
        {"job_count": "unfiltered"},
        {"status_filter": "no-partial"},
        {"status_filter": "ignored"},
        {"offset_unit": "page1", "job_count": "page", "limit_cap": 30},
    ],
    ids=lambda r: ",".join(f"{k}={v}" for k, v in r.items()),
)
async def test_failed_today_lists_every_failure_under_every_reading(tmp_path: Path, reading: dict[str, Any]) -> None:
    """250 failures today among as many successes: all of them answer ``failed today`` and
    ``partial today``, whatever the GES's reading (read as a page number, ``offset`` once listed
    10 of 25), asked for as the runtime asks (the poller calibrated the client)."""
    async with world(tmp_path, calibrated=False, **reading) as w:
        jobs = []
        for i in range(500):
            status = ("failed", "success", "partiallyFailed", "success")[i % 4]
            began = NOW - timedelta(minutes=i + 5)
            jobs.append(
                {
                    "job_id": f"j{i:04d}",
                    "status": status,
                    "job_name": "ImportGraph",
                    "related_graph": "movies",
                    "begin_time": wire_time(began),
                    "end_time": wire_time(began + timedelta(minutes=2)),
                }
            )
        await w.emu.add_jobs(jobs)
        failed = await w.runner.jobs(FAILED_TODAY, now=NOW, zone=ZoneInfo("UTC"))
        assert sorted(ids(failed)) == [f"j{i:04d}" for i in range(0, 500, 4)]
        partial = Query(statuses=frozenset({"partiallyFailed"}), range=TimeRange.today())
        assert sorted(ids(await w.runner.jobs(partial, now=NOW, zone=ZoneInfo("UTC")))) == [
            f"j{i:04d}" for i in range(2, 500, 4)
        ]


# -- answering from a recent poll --------------------------------------------------------------


async def test_a_recent_poll_answers_from_the_store_without_asking_ges(tmp_path: Path) -> None:
    from ges_bot.watch.poller import Poller

    async with world(tmp_path) as w:
        await w.job("today-1", "failed", NOW - timedelta(hours=2), NOW - timedelta(hours=3))
        await w.job("today-2", "failed", NOW - timedelta(minutes=5), NOW - timedelta(days=2))  # a long runner
        await w.job("today-ok", "success", NOW - timedelta(hours=1), NOW - timedelta(hours=2))
        await w.job("yesterday", "failed", NOW - timedelta(days=1), NOW - timedelta(days=1, hours=1))
        await w.job("running", "running", None, NOW - timedelta(minutes=30))
        polled_at = NOW - timedelta(seconds=40)
        poller = Poller(w.emu.project_settings(alias=ALIAS), w.client, w.store, clock=lambda: polled_at)
        await poller.tick()
        live = await w.runner.jobs(FAILED_TODAY, now=NOW, zone=ZoneInfo("UTC"))

        recent = QueryRunner(w.services, fresh_within=timedelta(seconds=60), clock=lambda: NOW)
        before = w.client.requests_sent
        answer = await recent.jobs(FAILED_TODAY, now=NOW, zone=ZoneInfo("UTC"))
        assert w.client.requests_sent == before  # GES was not asked
        assert isinstance(answer, JobsAnswer)
        assert [(s.kind, s.as_of) for s in answer.sources] == [(SourceKind.RECENT, polled_at)]
        assert ids(answer) == ids(live) == ["today-2", "today-1"]
        running = Query(statuses=frozenset({"running"}))
        assert ids(await recent.jobs(running, now=NOW, zone=ZoneInfo("UTC"))) == ["running"]
        assert w.client.requests_sent == before

        # A poll older than the limit: GES is asked, live.
        stale = QueryRunner(w.services, fresh_within=timedelta(seconds=30), clock=lambda: NOW)
        answer = await stale.jobs(FAILED_TODAY, now=NOW, zone=ZoneInfo("UTC"))
        assert isinstance(answer, JobsAnswer)
        assert [s.kind for s in answer.sources] == [SourceKind.LIVE]
        assert w.client.requests_sent > before
        assert ids(answer) == ["today-2", "today-1"]


async def test_a_baseline_read_in_part_is_no_recent_poll_to_answer_from(tmp_path: Path) -> None:
    """A first poll cut short by its budget succeeded, but the records hold only part of GES's list."""
    from ges_bot.watch.poller import Poller

    async with world(tmp_path) as w:
        for i in range(5):
            await w.job(f"f{i}", "failed", NOW - timedelta(hours=1), NOW - timedelta(hours=2))
        await _add_3000_jobs(w)  # more than one page
        polled_at = NOW - timedelta(seconds=40)
        poller = Poller(w.emu.project_settings(alias=ALIAS), w.client, w.store, clock=lambda: polled_at, max_pages=1)
        report = await poller.tick()
        state = await w.store.poll_state(ALIAS)
        assert report.partial and state is not None
        assert (state.last_success_at, state.baselined_at) == (polled_at, None)

        recent = QueryRunner(w.services, fresh_within=timedelta(seconds=60), clock=lambda: NOW)
        answer = await recent.jobs(FAILED_TODAY, now=NOW, zone=ZoneInfo("UTC"))
        assert isinstance(answer, JobsAnswer)
        assert [s.kind for s in answer.sources] == [SourceKind.LIVE]
        assert sorted(ids(answer)) == ["f0", "f1", "f2", "f3", "f4"]


class CountingStore:
    """The real store, counting the snapshot reads that answer questions (our own interface)."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.reads = 0

    async def query_jobs(self, query: JobQuery) -> list[Snapshot]:
        self.reads += 1
        return await self.store.query_jobs(query)

    async def poll_state(self, project: str) -> PollState | None:
        return await self.store.poll_state(project)


async def test_identical_questions_from_a_recent_poll_share_one_read(tmp_path: Path) -> None:
    """A stand-up: twenty people ask "failed last 7d" within the same minute. One snapshot read
    answers them all, and each answer is still exact for its own asker's range."""
    from ges_bot.watch.poller import Poller

    async with world(tmp_path) as w:
        # Ended 7 days before NOW + 20 s: inside the range of an asker at NOW, outside one at NOW + 30 s.
        await w.job("edge", "failed", NOW - timedelta(days=7) + timedelta(seconds=20), NOW - timedelta(days=8))
        await w.job("inside", "failed", NOW - timedelta(hours=1), NOW - timedelta(hours=2))
        poller = Poller(w.emu.project_settings(alias=ALIAS), w.client, w.store, clock=lambda: NOW)
        await poller.tick()
        counting = CountingStore(w.store)
        w.services.store = counting  # type: ignore[assignment]
        recent = QueryRunner(w.services, fresh_within=timedelta(seconds=60), clock=lambda: NOW)
        week = Query(statuses=frozenset({"failed"}), range=TimeRange("last", span=timedelta(days=7)))
        utc = ZoneInfo("UTC")
        moments = [NOW.replace(second=0) + timedelta(seconds=s) for s in (0, 5, 10, 30, 45)] * 4
        answers = await asyncio.gather(*(recent.jobs(week, now=at, zone=utc) for at in moments))
        assert counting.reads == 1
        for at, answer in zip(moments, answers, strict=True):
            assert isinstance(answer, JobsAnswer)
            assert [s.kind for s in answer.sources] == [SourceKind.RECENT]
            expected = (
                ["inside", "edge"] if at - timedelta(days=7) <= NOW - timedelta(days=7, seconds=-20) else ["inside"]
            )
            assert ids(answer) == expected, at

        # Another minute is another read: nothing is cached past the questions in flight.
        later = await recent.jobs(week, now=NOW.replace(second=0) + timedelta(minutes=1), zone=utc)
        assert isinstance(later, JobsAnswer) and counting.reads == 2


async def test_a_recent_poll_answers_job_lookups_from_the_store(tmp_path: Path) -> None:
    """`job <id>` after a poll moments ago: an ended job (its state is final) and a running job
    that poll read come from the records, as of that poll; GES is not asked."""
    from ges_bot.watch.poller import Poller

    async with world(tmp_path) as w:
        await w.job("ended", "failed", NOW - timedelta(days=3), NOW - timedelta(days=3, hours=1), fail_reason="boom")
        await w.job("busy", "running", None, NOW - timedelta(minutes=30))
        polled_at = NOW - timedelta(seconds=40)
        poller = Poller(w.emu.project_settings(alias=ALIAS), w.client, w.store, clock=lambda: polled_at)
        await poller.tick()
        recent = QueryRunner(w.services, fresh_within=timedelta(seconds=60), clock=lambda: NOW)
        before = w.client.requests_sent
        ended = await recent.job(JobDetail("ended"))
        busy = await recent.job(JobDetail("busy"))
        assert w.client.requests_sent == before  # GES was not asked
        assert isinstance(ended, JobLookup) and isinstance(busy, JobLookup)
        assert (ended.job.status, ended.job.fail_reason, ended.source.kind) == ("failed", "boom", SourceKind.RECENT)
        assert (busy.job.status, busy.source.kind, busy.source.as_of) == ("running", SourceKind.RECENT, polled_at)

        # Older than the limit: GES is asked, and says what changed since.
        await w.emu.patch_job("busy", status="success", end_time=wire_time(NOW - timedelta(seconds=5)))
        stale = QueryRunner(w.services, fresh_within=timedelta(seconds=30), clock=lambda: NOW)
        found = await stale.job(JobDetail("busy"))
        assert isinstance(found, JobLookup)
        assert (found.job.status, found.source.kind) == ("success", SourceKind.LIVE)
        assert w.client.requests_sent > before
