"""GES requests per poll tick: ges-bot's poller against a naive one that lists the whole day.

Runs the GES emulator in-process on a loopback port with a project doing ~10 000 jobs a day
(a day of finished history, ~20 jobs running at any time), and a fresh SQLite store. Each
simulated minute: the emulated clock moves 60 s, ~7 jobs finish (some of them running ones, some
started and finished between two polls), a few new ones start; then one tick. Counts the job-list
requests the emulator answered (``GET /_emulator/stats``) per tick, for:

- ``ges-bot``: ``watch.poller.Poller`` (baseline, the first cheap tick, then steady state);
- ``naive``: every tick lists every job of today and yesterday (what a poller without memory
  must do to see every transition): ``JobCenterClient.list_jobs(start_date=yesterday)``.

    python bench/poll_cost_quick.py [--jobs-per-day 10000] [--active 20] [--ticks 30] [--page-size 100]
                                    [--order asc|desc|random] [--reading NAME | KEY=VALUE,… | all]

``--reading`` runs the emulator under another reading of the job list (issue 11): a name from
``READINGS`` below (``job_count=page``, ``page1×page``, …), emulator settings as ``KEY=VALUE,…``,
or ``all`` — then one table row per reading: the requests of a steady tick (the poller calibrates
on its first tick), and the alerts missed and doubled against the failures the workload made.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from ges_bot.config import ProjectSettings  # noqa: E402
from ges_bot.domain import EventKind  # noqa: E402
from ges_bot.emulator import EmulatorSettings, create_app, emulator_state  # noqa: E402
from ges_bot.emulator.app import LIST_ROUTE  # noqa: E402
from ges_bot.emulator.state import EmulatorState  # noqa: E402
from ges_bot.jobcenter.client import JobCenterClient, ListQuery  # noqa: E402
from ges_bot.loopback import serve  # noqa: E402
from ges_bot.store import open_store  # noqa: E402
from ges_bot.watch.poller import Poller, TickReport  # noqa: E402

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
#: Readings of the job list (emulator settings), as in tests/test_readings_matrix.py.
READINGS: dict[str, dict[str, Any]] = {
    "documented": {},
    "job_count=unfiltered": {"job_count": "unfiltered"},
    "job_count=page": {"job_count": "page"},
    "offset=page0": {"offset_unit": "page0"},
    "offset=page1": {"offset_unit": "page1"},
    "status=no-partial": {"status_filter": "no-partial"},
    "status=ignored": {"status_filter": "ignored"},
    "waiting=pending": {"waiting_word": "pending"},
    "dates=end_time": {"date_filter_field": "end_time"},
    "dates=utc+8": {"date_filter_tz": "+08:00"},
    "times=naive_utc+8": {"time_zone_suffix": "none-utc+8"},
    "limit_cap=50": {"limit_cap": 50},
    "page1×page": {"offset_unit": "page1", "job_count": "page"},
    "page0×unfiltered": {"offset_unit": "page0", "job_count": "unfiltered"},
    "no-partial×end_time": {"status_filter": "no-partial", "date_filter_field": "end_time"},
    "ignored×end_time": {"status_filter": "ignored", "date_filter_field": "end_time"},
}
_FAILURES = ("failed", "partiallyFailed")
ROUTE = f"GET {LIST_ROUTE}"


def wire(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S")


async def list_calls(control: httpx.AsyncClient) -> int:
    """Job-list requests the emulator answered so far (its own counter, over its control API)."""
    answer = await control.get("/_emulator/stats")
    answer.raise_for_status()
    return int(answer.json()["requests"].get(ROUTE, 0))


class Workload:
    """A job center doing ``per_day`` jobs a day with about ``active`` running at once."""

    def __init__(self, state: EmulatorState, per_day: int, active: int, seed: int = 1) -> None:
        self.state = state
        self.per_minute = per_day / (24 * 60)
        self.active = active
        self.rng = random.Random(seed)
        self.seq = 0
        self.running: list[str] = []
        self.owed = 0.0
        #: Jobs that ended in a failure since ``history`` (each must be alerted once).
        self.failed: set[str] = set()

    def add(self, **fields: Any) -> str:
        self.seq += 1
        job_id = f"job{self.seq:07d}"
        fields.setdefault("job_name", "ImportGraph")
        fields.setdefault("related_graph", f"graph{self.seq % 40}")
        self.state.add_from_input({"job_id": job_id, **fields})
        return job_id

    def history(self, per_day: int) -> None:
        now = self.state.now()
        jobs = []
        for i in range(per_day):
            begin = now - timedelta(seconds=86400 * (i + 1) / per_day)
            status = self.rng.choice(["success"] * 18 + ["failed", "partiallyFailed"])
            jobs.append(
                {
                    "job_id": f"hist{i:07d}",
                    "status": status,
                    "job_name": "ImportGraph",
                    "related_graph": f"graph{i % 40}",
                    "begin_time": wire(begin),
                    "end_time": wire(begin + timedelta(seconds=self.rng.randint(5, 600))),
                }
            )
        self.state.add_many(jobs)
        for _ in range(self.active):
            self.running.append(self.add(status="running", begin_time=wire(now - timedelta(minutes=5))))

    def minute(self) -> None:
        """One minute of a busy job center: about per_minute jobs finish."""
        self.owed += self.per_minute
        finishing = int(self.owed)
        self.owed -= finishing
        now = self.state.now()
        for _ in range(finishing):
            status = self.rng.choice(["success"] * 18 + ["failed", "partiallyFailed"])
            if self.running and self.rng.random() < 0.5:
                job_id = self.running.pop(self.rng.randrange(len(self.running)))
                self.state.patch(job_id, {"status": status})
            else:  # started and finished between two polls
                job_id = self.add(status=status, begin_time=wire(now - timedelta(seconds=30)))
            if status in _FAILURES:
                self.failed.add(job_id)
        while len(self.running) < self.active:
            self.running.append(self.add(status="running"))


@dataclass
class Result:
    steady: list[int]
    naive: list[int]
    events: int
    missed: int
    doubled: int


def bench_project(settings: EmulatorSettings, url: str) -> ProjectSettings:
    """The project the benchmarks poll: the emulator at ``url``, with its AK/SK."""
    return ProjectSettings(
        alias="bench",
        project_id=settings.project_id,
        endpoint=url,
        region=None,
        auth="aksk",
        ak=SecretStr(settings.ak),
        sk=SecretStr(settings.sk),
    )


async def measure(args: argparse.Namespace, reading: dict[str, Any], *, quiet: bool = False) -> Result:
    settings = EmulatorSettings(order=args.order, max_limit=1000, **reading)
    app = create_app(settings)
    state = emulator_state(app)
    state.clock.set(T0)
    say = (lambda *_: None) if quiet else print
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as control:
        project = bench_project(settings, url)
        work = Workload(state, args.jobs_per_day, args.active)
        work.history(args.jobs_per_day)
        with tempfile.TemporaryDirectory() as tmp:
            store = await open_store(f"sqlite:///{Path(tmp) / 'bench.db'}")
            client = JobCenterClient(project, page_size=args.page_size, timeout=30)
            naive_client = JobCenterClient(project, page_size=args.page_size, timeout=30)
            # No tick budget: the baseline and first cheap tick are measured whole, one tick each.
            poller = Poller(
                project,
                client,
                store,
                clock=state.now,
                replica="bench",
                stuck_after=timedelta(days=7),
                max_pages=1_000_000,
                tick_deadline=3600,
            )
            alerted: Counter[str] = Counter()

            def note(report: TickReport) -> None:
                for event in report.events:
                    if event.kind in (EventKind.FAILED, EventKind.PARTIALLY_FAILED):
                        alerted[event.job.job_id] += 1

            try:
                before = await list_calls(control)
                base = await poller.tick()
                say(
                    f"{args.jobs_per_day} jobs/day, ~{args.active} active, page size {args.page_size}, order {args.order}"
                )
                say(f"baseline (first start, everything listed once): {await list_calls(control) - before} requests")
                state.clock.advance(60)
                work.minute()
                before = await list_calls(control)
                first = await poller.tick()
                note(first)
                say(
                    f"first cheap tick (each terminal window listed whole, once): {await list_calls(control) - before} requests"
                )
                ours: list[int] = []
                naive: list[int] = []
                events = 0
                for _ in range(args.ticks):
                    state.clock.advance(60)
                    work.minute()
                    before = await list_calls(control)
                    report = await poller.tick()
                    note(report)
                    ours.append(await list_calls(control) - before)
                    events += len(report.events)
                    if not quiet:
                        before = await list_calls(control)
                        yesterday = state.now().date() - timedelta(days=1)
                        await naive_client.list_jobs(ListQuery(start_date=yesterday))
                        naive.append(await list_calls(control) - before)
                assert base.events == ()
                say(f"steady state over {args.ticks} ticks ({events} events recorded):")
                say(f"  {'poller':<8} {'median':>7} {'max':>5} {'mean':>7}")
                for name, xs in (("ges-bot", ours), ("naive", naive)):
                    if xs:
                        say(f"  {name:<8} {statistics.median(xs):>7.0f} {max(xs):>5} {statistics.mean(xs):>7.1f}")
                missed = len(work.failed - set(alerted))
                doubled = sum(1 for n in alerted.values() if n > 1)
                return Result(ours, naive, events, missed, doubled)
            finally:
                await client.aclose()
                await naive_client.aclose()
                await store.close()


def _reading(text: str) -> dict[str, Any]:
    if text in READINGS:
        return READINGS[text]
    out: dict[str, Any] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            known = ", ".join(READINGS)
            raise SystemExit(f"--reading {text!r}: give a name ({known}), KEY=VALUE,… or all")
        out[key.strip()] = int(value) if value.strip().isdigit() else value.strip()
    return out


async def table(args: argparse.Namespace, names: list[str]) -> None:
    print(f"{args.jobs_per_day} jobs/day, ~{args.active} active, page size {args.page_size}, {args.ticks} steady ticks")
    print()
    print("| reading | requests per steady tick (median) | max | mean | alerts missed | alerts doubled |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        r = await measure(args, _reading(name), quiet=True)
        print(
            f"| {name} | {statistics.median(r.steady):.0f} | {max(r.steady)} | {statistics.mean(r.steady):.1f} "
            f"| {r.missed} | {r.doubled} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs-per-day", type=int, default=10_000)
    parser.add_argument("--active", type=int, default=20)
    parser.add_argument("--ticks", type=int, default=30)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--order", choices=["asc", "desc", "random"], default="asc")
    parser.add_argument(
        "--reading",
        action="append",
        help="a reading of the job list: a name (" + ", ".join(READINGS) + "), KEY=VALUE,… or all (repeatable)",
    )
    args = parser.parse_args()
    if not args.reading:
        asyncio.run(measure(args, {}))
        return
    names = list(READINGS) if "all" in args.reading else args.reading
    asyncio.run(table(args, names))


if __name__ == "__main__":
    main()
